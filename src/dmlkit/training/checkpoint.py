"""Checkpoints (written atomically through :mod:`dmlkit.files`) and the state of the global RNGs.

Every checkpoint carries a digest of its content (``state["digest"]``, SHA-256 over every tensor's
and array's bytes, dtype and shape and every other value, in order), checked when it is loaded: a
file damaged on disk or in a copy is refused by name instead of loading wrong weights silently
(``torch.load`` itself does not notice flipped bytes inside tensor data).
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dmlkit.errors import DmlkitError
from dmlkit.files import atomic_write

#: Version of the checkpoint layout the trainer writes (``state["format"]``); 2 added the run's facts.
CHECKPOINT_FORMAT = 2


def _feed(h: Any, obj: Any) -> None:
    """Add ``obj`` to the hash ``h``: containers by their keys and items, arrays by dtype, shape and bytes."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    elif isinstance(obj, np.ndarray) and obj.dtype != object:
        a = np.ascontiguousarray(obj)
        h.update(f"A{a.dtype}{a.shape}".encode())
        h.update(a.view(np.uint8).data)
    elif isinstance(obj, dict):
        h.update(b"{")
        for key, value in obj.items():
            h.update(repr(key).encode())
            _feed(h, value)
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[" if isinstance(obj, list) else b"(")
        for value in obj:
            _feed(h, value)
        h.update(b"]")
    else:
        h.update(f"{type(obj).__name__}:{obj!r};".encode())


def state_digest(state: dict[str, Any]) -> str:
    """The SHA-256 digest of a checkpoint's content (its ``digest`` entry left out)."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in state.items() if k != "digest"})
    return h.hexdigest()


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Save a checkpoint dict atomically, with its digest."""
    state = {**state, "digest": state_digest(state)}
    atomic_write(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` and check its digest; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise DmlkitError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # corrupt or foreign file
        raise DmlkitError(f"cannot load checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict):
        raise DmlkitError(f"{path} is not a dmlkit checkpoint (it holds a {type(state).__name__}, not a dict)")
    if "digest" in state and state_digest(state) != state["digest"]:
        raise DmlkitError(
            f"checkpoint {path} is damaged: its content does not match the digest written with it (a disk or copy "
            "error); use the run's other checkpoint (last.pt / best.pt) or an earlier copy"
        )
    return state


def rng_state() -> dict[str, Any]:
    """The state of every global random generator (python, numpy, torch, CUDA)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
