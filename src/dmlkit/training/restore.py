"""Rebuilding a trained model (and its method) from a run directory or checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dmlkit.config import RunConfig, config_from_dict
from dmlkit.data.registry import get_dataset_spec
from dmlkit.errors import DmlkitError
from dmlkit.methods import Method
from dmlkit.models.model import EmbeddingModel
from dmlkit.training.checkpoint import load_checkpoint
from dmlkit.training.trainer import build_method, build_model_from_config


@dataclass
class TrainedRun:
    """A model restored for inference, with the config it was trained with."""

    cfg: RunConfig
    model: EmbeddingModel
    method: Method
    checkpoint: Path
    epoch: int


def resolve_checkpoint(path: str | Path, which: str = "last") -> Path:
    """A checkpoint file from a run directory (``checkpoints/{which}.pt``) or a file path."""
    path = Path(path)
    if path.is_dir():
        candidate = path / "checkpoints" / f"{which}.pt"
        if not candidate.is_file():
            raise DmlkitError(
                f"no checkpoint at {candidate}: expected a run directory holding checkpoints/{which}.pt "
                "(written by 'dmlkit train') or the path of a .pt checkpoint"
            )
        return candidate
    if not path.is_file():
        raise DmlkitError(f"not found: {path} (expected a run directory or a .pt checkpoint)")
    return path


def load_trained(path: str | Path, which: str = "last") -> TrainedRun:
    """Restore the model and method saved in a checkpoint, in eval mode on the CPU."""
    ckpt_path = resolve_checkpoint(path, which)
    state = load_checkpoint(ckpt_path)
    if "config" not in state or "model" not in state:
        raise DmlkitError(f"{ckpt_path} is not a dmlkit training checkpoint (no 'config'/'model' entries)")
    cfg = config_from_dict(state["config"])
    cfg.model.pretrained = False  # the checkpoint holds the weights
    mode = get_dataset_spec(cfg.data.dataset).mode
    model = build_model_from_config(cfg, mode)
    model.load_state_dict(state["model"])
    method = build_method(cfg, int(state["num_classes"]), model.embedding_dim)
    method.load_state_dict(state["method"])
    method.load_extra_checkpoint_state(state.get("method_extra", {}))
    model.eval()
    method.eval()
    return TrainedRun(cfg, model, method, ckpt_path, int(state["epoch"]))
