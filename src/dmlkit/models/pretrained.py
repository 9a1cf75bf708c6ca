"""Pretrained weights: from a local file, or from the library's cache/hub when online.

``pretrained: false`` initialises randomly; ``true`` asks torchvision/timm for their
ImageNet weights (their local cache first); a path loads that file. Asking for weights
and not getting them is always an error, never a silent random initialisation.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from dmlkit.errors import WeightsError

#: Key prefixes removed from loaded state dicts (DataParallel, Lightning, wrappers).
STRIP_PREFIXES = ("module.", "model.", "backbone.", "net.", "encoder.")
#: Classifier keys dropped from loaded state dicts.
CLASSIFIER_PREFIXES = ("fc.", "classifier.", "head.", "aux1.", "aux2.", "AuxLogits.", "last_linear.")


def offline() -> bool:
    """True when the environment says not to download (``HF_HUB_OFFLINE`` or ``DMLKIT_OFFLINE``)."""
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes") for k in ("HF_HUB_OFFLINE", "DMLKIT_OFFLINE"))


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.pth/.pt/.bin`` (torch) or ``.safetensors`` file into a flat state dict."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"pretrained weights file not found: {path} (config key model.pretrained)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"cannot read pretrained weights {path}: {exc}") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} does not hold a state dict of tensors")
    return state


def clean_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes and drop classifier weights."""
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in STRIP_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        if not key.startswith(CLASSIFIER_PREFIXES):
            out[key] = value
    return out


def load_local_weights(module: nn.Module, path: str | Path) -> None:
    """Load ``path`` into ``module``; shapes must match; unmatched keys are reported."""
    state = clean_state_dict(read_state_dict(path))
    own = module.state_dict()
    matched = {k: v for k, v in state.items() if k in own}
    if not matched:
        raise WeightsError(
            f"no tensor of {path} matches the backbone (e.g. file has {sorted(state)[:3]}, "
            f"model expects {sorted(own)[:3]})"
        )
    wrong = [k for k, v in matched.items() if v.shape != own[k].shape]
    if wrong:
        raise WeightsError(
            f"{path}: shape mismatch for {wrong[:5]} (e.g. {tuple(matched[wrong[0]].shape)} vs "
            f"{tuple(own[wrong[0]].shape)})"
        )
    result = module.load_state_dict(matched, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(CLASSIFIER_PREFIXES)]
    if missing:
        warnings.warn(
            f"{path}: {len(missing)} backbone tensors not in the file keep their initial values (e.g. {missing[:3]})",
            stacklevel=2,
        )


def download_failed(model: str, exc: BaseException, cache: str) -> WeightsError:
    return WeightsError(
        f"pretrained ImageNet weights for {model!r} are not in the local cache ({cache}) and could not be "
        f"downloaded ({type(exc).__name__}: {exc}). Pass a local file with model.pretrained=/path/to/weights.pth, "
        "or set model.pretrained=false to train from random initialisation."
    )
