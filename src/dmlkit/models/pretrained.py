"""Pretrained weights: from a local file, or from torchvision's / timm's own cache or download.

``model.pretrained`` takes three forms:

* ``false`` — random initialisation.
* ``true`` — the library's ImageNet weights. torchvision weights are looked up in
  ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/hub/checkpoints``), timm weights in
  the Hugging Face cache (``$HF_HOME/hub``); if absent they are downloaded. When
  ``HF_HUB_OFFLINE`` or ``DMLKIT_OFFLINE`` is set, or the download fails, a :class:`WeightsError`
  says so at once and tells how to pass a local file instead.
* a path to a ``.pth``/``.pt``/``.bin`` (read with ``torch.load(weights_only=True)``) or
  ``.safetensors`` file — see :func:`load_weights_file`.

Asking for weights and not getting them is always an error, never a silent random initialisation.
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from dmlkit.errors import ConfigError, WeightsError

T = TypeVar("T")

#: Wrapper prefixes removed from a file's keys (DataParallel, Lightning, dmlkit checkpoints, ...).
STRIP_PREFIXES = ("module.", "model.", "backbone.", "net.", "encoder.", "_orig_mod.")
#: Nested entries that hold the state dict in training checkpoints.
NESTED_KEYS = ("state_dict", "model", "model_state_dict", "net", "network")
#: Classifier prefixes: such keys of the file that the backbone lacks are dropped without a warning.
CLASSIFIER_PREFIXES = ("fc.", "classifier.", "head.", "heads.", "last_linear.", "aux1.", "aux2.", "AuxLogits.")
#: Socket timeout (seconds) while downloading, so an unreachable host fails instead of hanging.
DOWNLOAD_TIMEOUT_S = 30.0

Pretrained = bool | str


@dataclass
class LoadReport:
    """What :func:`load_weights_file` did: loaded, missing, unexpected and dropped keys."""

    path: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for logs."""
        return (
            f"{self.path}: loaded {len(self.loaded)} tensors, {len(self.missing)} missing, "
            f"{len(self.unexpected)} unexpected, {len(self.dropped)} classifier tensors dropped"
        )


def check_pretrained(value: Any) -> Pretrained:
    """Validate the ``model.pretrained`` value: a bool or a non-empty path string."""
    if isinstance(value, bool) or (isinstance(value, str) and value.strip()):
        return value
    raise ConfigError(f"config key 'model.pretrained': expected true, false or a file path, got {value!r}")


def offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``DMLKIT_OFFLINE`` is set to 1/true/yes (no download is tried)."""
    flags = (os.environ.get(k, "").strip().lower() for k in ("HF_HUB_OFFLINE", "DMLKIT_OFFLINE"))
    return any(flag in ("1", "true", "yes", "on") for flag in flags)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a torch (``.pth/.pt/.bin/.ckpt``) or ``.safetensors`` file into a flat state dict.

    A checkpoint holding the state dict under ``state_dict``/``model``/... is unwrapped.

    Raises:
        WeightsError: the file is missing, unreadable or holds no tensors.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"pretrained weights file not found: {path} (config key model.pretrained)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"cannot read pretrained weights {path}: {type(exc).__name__}: {exc}") from exc
    while isinstance(state, dict) and not any(isinstance(v, torch.Tensor) for v in state.values()):
        inner = next((state[k] for k in NESTED_KEYS if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, dict):
        raise WeightsError(f"{path} does not hold a state dict (found {type(state).__name__})")
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"{path} holds no tensors (top-level keys: {sorted(state)[:5]})")
    return tensors


def match_keys(state: dict[str, torch.Tensor], own: set[str]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Map the file's keys onto ``own`` by stripping wrapper prefixes (:data:`STRIP_PREFIXES`).

    Each key is stripped one prefix at a time until it names a tensor of the model; keys that never
    do are returned as unmatched (original spelling).
    """
    matched: dict[str, torch.Tensor] = {}
    unmatched: list[str] = []
    for key, value in state.items():
        candidate = key
        while candidate not in own:
            prefix = next((p for p in STRIP_PREFIXES if candidate.startswith(p)), None)
            if prefix is None:
                break
            candidate = candidate[len(prefix) :]
        if candidate in own:
            matched[candidate] = value
        else:
            unmatched.append(key)
    return matched, unmatched


def _is_classifier(key: str) -> bool:
    while True:
        if key.startswith(CLASSIFIER_PREFIXES):
            return True
        prefix = next((p for p in STRIP_PREFIXES if key.startswith(p)), None)
        if prefix is None:
            return False
        key = key[len(prefix) :]


def load_weights_file(module: nn.Module, path: str | Path, hint: str = "") -> LoadReport:
    """Load the weights file ``path`` into ``module`` (non-strict, shapes checked).

    Wrapper prefixes are stripped (:func:`match_keys`); the file's classifier tensors
    (``fc.``, ``classifier.``, ``aux1.``, ...) that ``module`` lacks are dropped. Tensors of
    ``module`` missing from the file keep their initial values and file tensors matching nothing
    are ignored; both are reported in a warning and in the returned :class:`LoadReport`.

    Raises:
        WeightsError: the file is missing/unreadable, no tensor matches (``hint`` is appended to
            the message) or a matched tensor has the wrong shape.
    """
    state = read_state_dict(path)
    own = module.state_dict()
    matched, unmatched = match_keys(state, set(own))
    report = LoadReport(str(path))
    report.dropped = [k for k in unmatched if _is_classifier(k)]
    report.unexpected = [k for k in unmatched if not _is_classifier(k)]
    if not matched:
        raise WeightsError(
            f"no tensor of {path} matches the backbone (file keys e.g. {sorted(state)[:3]}, "
            f"backbone keys e.g. {sorted(own)[:3]}){hint}"
        )
    wrong = [k for k, v in matched.items() if v.shape != own[k].shape]
    if wrong:
        k = wrong[0]
        raise WeightsError(
            f"{path}: {len(wrong)} tensors have the wrong shape, e.g. {k} is {tuple(matched[k].shape)} "
            f"in the file but {tuple(own[k].shape)} in the backbone{hint}"
        )
    result = module.load_state_dict(matched, strict=False)
    report.loaded = sorted(matched)
    report.missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if report.missing or report.unexpected:
        warnings.warn(
            f"{report.summary()}; missing e.g. {report.missing[:3]} (they keep their initial values), "
            f"unexpected e.g. {report.unexpected[:3]} (ignored)",
            stacklevel=2,
        )
    return report


def download_failed(model: str, reason: str, cache: str | Path) -> WeightsError:
    """The error for ``pretrained: true`` when the weights are neither cached nor downloadable."""
    return WeightsError(
        f"pretrained ImageNet weights for {model!r} are not in the local cache ({cache}) and could not be "
        f"downloaded ({reason}). Put the file there, pass a local file with "
        "model.pretrained=/path/to/weights.pth, or set model.pretrained=false to train from random "
        "initialisation."
    )


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def torchvision_cache_dir() -> Path:
    """Where torchvision keeps downloaded weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def build_torchvision_pretrained(builder: Callable[..., T], weights: Any, model: str, **kwargs: Any) -> T:
    """``builder(weights=weights, **kwargs)`` with the cache checked first and errors made helpful.

    Raises:
        WeightsError: the file is not cached and we are offline or the download fails.
    """
    cache = torchvision_cache_dir()
    cached = (cache / weights.url.rsplit("/", 1)[-1]).is_file()
    if not cached and offline():
        raise download_failed(model, "offline: HF_HUB_OFFLINE or DMLKIT_OFFLINE is set", cache)
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            return builder(weights=weights, **kwargs)
    except Exception as exc:  # URLError, socket errors, hash mismatch, truncated file
        raise download_failed(model, f"{type(exc).__name__}: {exc}", cache) from exc


def hf_cache_dir() -> str:
    """The Hugging Face hub cache that timm downloads into."""
    try:
        from huggingface_hub import constants

        return os.environ.get("HF_HUB_CACHE") or str(constants.HF_HUB_CACHE)
    except ImportError:  # pragma: no cover - timm depends on huggingface_hub
        return "~/.cache/huggingface/hub"


def _timm_weights_cached(cfg: Any) -> bool:
    repo = getattr(cfg, "hf_hub_id", None)
    if repo:
        from huggingface_hub import try_to_load_from_cache

        files = [getattr(cfg, "hf_hub_filename", None), "model.safetensors", "pytorch_model.bin"]
        return any(isinstance(try_to_load_from_cache(repo, f, cache_dir=hf_cache_dir()), str) for f in files if f)
    url = getattr(cfg, "url", None)
    return bool(url) and (torchvision_cache_dir() / url.rsplit("/", 1)[-1]).is_file()


def create_timm_pretrained(name: str, **kwargs: Any) -> nn.Module:
    """``timm.create_model(name, pretrained=True, **kwargs)``, never falling back to random init.

    timm only logs a warning and initialises randomly when a model has no pretrained weights;
    here that is a :class:`WeightsError`, as is a weight file that is neither cached nor downloadable.
    """
    import timm
    from timm.models import get_pretrained_cfg, is_model_pretrained

    cfg = get_pretrained_cfg(name, allow_unregistered=False) if is_model_pretrained(name) else None
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        raise WeightsError(
            f"timm has no pretrained weights for {name!r} (see timm.list_pretrained()); pass a local file with "
            "model.pretrained=/path/to/weights.pth or set model.pretrained=false"
        )
    cache = hf_cache_dir() if cfg.hf_hub_id else torchvision_cache_dir()
    if offline() and not cfg.file and not _timm_weights_cached(cfg):
        raise download_failed(f"timm:{name}", "offline: HF_HUB_OFFLINE or DMLKIT_OFFLINE is set", cache)
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            return timm.create_model(name, pretrained=True, **kwargs)
    except Exception as exc:
        raise download_failed(f"timm:{name}", f"{type(exc).__name__}: {exc}", cache) from exc
