"""Restoring a trained run from its checkpoint: build from the saved config and facts, load the weights.

The same for every method: the method is constructed from its config section and the run's facts
(stored in the checkpoint, so the training data is not needed), then its parameters, buffers and
extra state are loaded. Evaluation and embedding go through the same :class:`Evaluator` and
:class:`FabricEmbedder` as in training, on one device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from lightning.fabric import Fabric

from dmlkit.assembly.components import build_method, build_model
from dmlkit.assembly.data import build_eval_split, build_split, prepared
from dmlkit.assembly.devices import build_fabric
from dmlkit.assembly.embedding import FabricEmbedder
from dmlkit.config import RunConfig, config_from_dict
from dmlkit.data.base import DMLDataset
from dmlkit.errors import DmlkitError
from dmlkit.evaluation.evaluator import Evaluator
from dmlkit.facts import RunFacts
from dmlkit.files import atomic_write
from dmlkit.methods import Method
from dmlkit.models.model import EmbeddingModel
from dmlkit.training.checkpoint import CHECKPOINT_FORMAT, load_checkpoint


@dataclass(frozen=True)
class Embeddings:
    """Embeddings of a dataset, with what identifies each item.

    Attributes:
        embeddings: (n, dim) float32.
        labels: (n,) labels in the dataset's label space.
        paths: Where each item comes from (file path, or archive:member).
        class_names: ``class_names[label]`` is the class's official id or name.
    """

    embeddings: np.ndarray
    labels: np.ndarray
    paths: list[str]
    class_names: list[str]

    def save(self, path: str | Path) -> Path:
        """Write an ``.npz`` with the four arrays (atomically)."""
        path = Path(path)
        arrays = {
            "embeddings": self.embeddings,
            "labels": self.labels,
            "paths": np.asarray(self.paths),
            "class_names": np.asarray(self.class_names),
        }
        atomic_write(path, lambda fh: np.savez(fh, **arrays))
        return path


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


def _device(device: str) -> tuple[str, int | list[int]]:
    """``cpu``, ``cuda``, ``cuda:1``, ``mps`` → Fabric's accelerator and devices."""
    name, _, index = device.partition(":")
    if name not in ("cpu", "cuda", "mps") or (index and not index.isdigit()):
        raise DmlkitError(f"--device {device!r}: expected cpu, cuda, cuda:N or mps")
    return name, [int(index)] if index else 1


@dataclass
class RestoredRun:
    """A trained model and its method, restored in eval mode, with the run's config and facts.

    Attributes:
        cfg: The config the run was trained with.
        facts: The run's facts (training class count and names, image size, ...).
        model: The embedding model on the evaluation device.
        method: The method (its test-time embedding and metrics).
        fabric: The single-device Fabric that embeds (device and precision).
        checkpoint: The checkpoint file.
        epoch: Epochs completed when it was written.
    """

    cfg: RunConfig
    facts: RunFacts
    model: EmbeddingModel
    method: Method
    fabric: Fabric
    checkpoint: Path
    epoch: int

    @property
    def embedder(self) -> FabricEmbedder:
        return FabricEmbedder(self.fabric, self.model, self.method, self.cfg.data.eval_batch_size)

    def embed(self, dataset: DMLDataset) -> Embeddings:
        """Embed every item of ``dataset`` (give it the run's eval transform: :meth:`dataset`, :meth:`folder`)."""
        emb, labels = self.embedder(dataset)
        return Embeddings(
            emb.numpy(),
            np.asarray(labels),
            [dataset.describe(i) for i in range(len(dataset))],
            list(dataset.class_names),
        )

    def dataset(self, split: str = "test", dataset: str | None = None, root: str | Path | None = None) -> DMLDataset:
        """Split ``split`` of ``dataset`` (default: the run's, at ``data.root``) with the run's eval transform."""
        return build_split(self.cfg, split, dataset, root)

    def folder(self, folder: str | Path) -> DMLDataset:
        """Every image under ``folder`` (label = parent folder name) with the run's eval transform."""
        from dmlkit.data.datasets.folder import image_folder

        return prepared(self.cfg, image_folder(Path(folder)), "eval")

    def evaluator(self, dataset: str | None = None, root: str | Path | None = None) -> Evaluator:
        """The run's evaluation of the test side of ``dataset`` (default: the run's)."""
        split = build_eval_split(self.cfg, dataset, root)
        return Evaluator(split, self.cfg.eval, self.cfg.seed, self.embedder, self.method.eval_metrics)

    def evaluate(
        self, dataset: str | None = None, root: str | Path | None = None, recall_at: Sequence[int] | None = None
    ) -> dict[str, float]:
        """The metrics of the trained model, as the trainer's final evaluation computes them."""
        return self.evaluator(dataset, root)(final=True, recall_at=recall_at).metrics


def restore_run(
    path: str | Path, which: str = "last", device: str = "cpu", precision: str | None = None
) -> RestoredRun:
    """Restore the model and method of a checkpoint, in eval mode on ``device``.

    Args:
        path: A run directory or a checkpoint file.
        which: ``last`` or ``best`` (for a run directory).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        precision: Fabric precision of the embedding (default: the run's ``trainer.precision``).
    """
    ckpt_path = resolve_checkpoint(path, which)
    state = load_checkpoint(ckpt_path)
    if state.get("format") != CHECKPOINT_FORMAT or "facts" not in state:
        raise DmlkitError(
            f"{ckpt_path} is not a dmlkit training checkpoint of format {CHECKPOINT_FORMAT} "
            f"(found format {state.get('format')!r}); it was written by another version of dmlkit"
        )
    cfg = config_from_dict(state["config"])
    facts = RunFacts.from_dict(state["facts"])
    model = build_model(cfg, pretrained=False)  # the checkpoint holds the weights
    model.load_state_dict(state["model"])
    method = build_method(cfg, facts, model)
    method.load_state_dict(state["method"])
    method.load_extra_checkpoint_state(state.get("method_extra", {}))
    accelerator, devices = _device(device)
    fabric = build_fabric(cfg.trainer, accelerator=accelerator, devices=devices, precision=precision)
    model.to(fabric.device).eval()
    method.to(fabric.device).eval()
    return RestoredRun(cfg, facts, model, method, fabric, ckpt_path, int(state["epoch"]))
