"""The datasets of a run, with their transforms: one place derives the image size and channel mode.

Both come from the training dataset (``data.dataset``) and ``data.image_size``: another dataset
evaluated or embedded with a trained run is read at the run's size and mode, the model's input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dmlkit.config import RunConfig
from dmlkit.data.base import DatasetSpec, DMLDataset, EvalSplit
from dmlkit.data.registry import check_split, get_dataset_spec
from dmlkit.data.transforms import build_transforms
from dmlkit.data.unlabeled import UnlabeledDataset


def _root(root: str | Path | None) -> Path | None:
    return Path(root).expanduser() if root else None


def image_size(cfg: RunConfig, spec: DatasetSpec | None = None) -> int:
    """``data.image_size``, or the training dataset's default."""
    return cfg.data.image_size or (spec or get_dataset_spec(cfg.data.dataset)).default_image_size


def transform(cfg: RunConfig, kind: str):
    """The ``train`` or ``eval`` transform of the run (its image size and mode, ``data.transform``)."""
    spec = get_dataset_spec(cfg.data.dataset)
    return build_transforms(kind, image_size(cfg, spec), spec.mode, **cfg.data.transform)


@dataclass
class TrainingSets:
    """The training images with the train transform, and the same images with the eval transform
    (for a method's passes over the training set). Labels are hidden for an unsupervised method."""

    train: DMLDataset
    train_eval: DMLDataset


def build_training_sets(cfg: RunConfig, hide_labels: bool) -> TrainingSets:
    """The ``train`` split of ``data.dataset`` with both transforms."""
    raw = get_dataset_spec(cfg.data.dataset).build(_root(cfg.data.root), "train")
    train, train_eval = (
        raw.with_transform(transform(cfg, "train")),
        raw.with_transform(transform(cfg, "eval")),
    )
    if hide_labels:  # the method never sees a training label: reading one raises
        train, train_eval = UnlabeledDataset(train), UnlabeledDataset(train_eval)
    return TrainingSets(train, train_eval)


def _other(cfg: RunConfig, dataset: str | None, root: str | Path | None) -> tuple[DatasetSpec, Path | None]:
    """The spec and root of ``dataset`` (default: the run's); the root defaults to ``data.root``
    only for the run's own dataset."""
    name = dataset or cfg.data.dataset
    if root is None and name == cfg.data.dataset:
        root = cfg.data.root
    return get_dataset_spec(name), _root(root)


def build_eval_split(cfg: RunConfig, dataset: str | None = None, root: str | Path | None = None) -> EvalSplit:
    """The test side (query and gallery) of ``dataset`` (default: the run's) with the run's eval transform."""
    spec, path = _other(cfg, dataset, root)
    split = spec.eval_split(path)
    tf = transform(cfg, "eval")
    return EvalSplit(
        split.query.with_transform(tf), None if split.gallery is None else split.gallery.with_transform(tf)
    )


def build_split(cfg: RunConfig, split: str, dataset: str | None = None, root: str | Path | None = None) -> DMLDataset:
    """Split ``split`` of ``dataset`` (default: the run's) with the run's eval transform (``dmlkit embed``)."""
    spec, path = _other(cfg, dataset, root)
    check_split(spec, split)
    return spec.build(path, split).with_transform(transform(cfg, "eval"))
