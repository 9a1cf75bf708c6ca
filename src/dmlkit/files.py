"""Crash-safe file writing.

Every file is written to a temporary name in the same folder, flushed to disk and then renamed
over the target, so a crash leaves either the old or the new file, never a truncated one. The
run directory, checkpoints and figures all write through here.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np


def _new_file_mode(path: Path) -> int:
    """The mode ``path`` would get from a plain ``open``: its current one, else 0o666 less the umask
    (``mkstemp`` alone gives 0o600, which hides a run's files from the user's group)."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through ``write(fileobj)`` atomically (parent folders are created; the file gets
    the permissions a plain write would give it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _new_file_mode(path))
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` atomically."""
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def json_safe(data: Any, where: str = "") -> tuple[Any, list[str]]:
    """``data`` with every non-finite float (``nan``, ``inf``) replaced by ``None``, and the dotted keys
    where that happened: JSON has no such numbers (Python would write invalid ``NaN`` tokens).

    Example:
        >>> json_safe({"a": 1.0, "b": [float("nan"), {"c": float("inf")}]})
        ({'a': 1.0, 'b': [None, {'c': None}]}, ['b[0]', 'b[1].c'])
    """
    if isinstance(data, (float, np.floating)):
        return (None, [where]) if not math.isfinite(data) else (data, [])
    if isinstance(data, dict):
        out, bad = {}, []
        for key, value in data.items():
            out[key], found = json_safe(value, f"{where}.{key}" if where else str(key))
            bad += found
        return out, bad
    if isinstance(data, (list, tuple)):
        items = [json_safe(v, f"{where}[{i}]") for i, v in enumerate(data)]
        return [v for v, _ in items], [b for _, found in items for b in found]
    return data, []


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented, valid JSON atomically (numpy scalars and paths are converted,
    non-finite numbers become ``null``: see :func:`json_safe`)."""
    clean, _ = json_safe(data)
    atomic_write_text(path, json.dumps(clean, indent=2, allow_nan=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
