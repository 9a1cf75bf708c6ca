"""The datasets of a run, with their transforms: one place derives the image size and channel mode.

Both come from the training dataset (``data.dataset``) and ``data.image_size``: another dataset
evaluated or embedded with a trained run is read at the run's size and mode, the model's input
(gray images replicated to RGB, colour ones converted to gray). Transparent images are composited
onto ``data.background``. A test side whose metrics would mean nothing (one class, the same image
listed twice, no query class in the gallery) is refused (:mod:`dmlkit.data.checks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dmlkit.config import RunConfig
from dmlkit.data.base import DatasetSpec, DMLDataset, EvalSplit
from dmlkit.data.cache import cached
from dmlkit.data.checks import check_test_side
from dmlkit.data.holdout import hold_out_classes
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


def prepared(cfg: RunConfig, dataset: DMLDataset, kind: str) -> DMLDataset:
    """``dataset`` read as the run reads images (its mode, ``data.background``) with its ``kind`` transform."""
    mode = get_dataset_spec(cfg.data.dataset).mode
    return dataset.reading(mode=mode, background=cfg.data.background).with_transform(transform(cfg, kind))


@dataclass
class TrainingSets:
    """The training images with the train transform, and the same images with the eval transform
    (for a method's passes over the training set). Labels are hidden for an unsupervised method."""

    train: DMLDataset
    train_eval: DMLDataset


def _training_classes(cfg: RunConfig) -> DMLDataset:
    raw = get_dataset_spec(cfg.data.dataset).build(_root(cfg.data.root), "train")
    return raw.reading(background=cfg.data.background)


def read_training_split(cfg: RunConfig) -> DMLDataset:
    """The ``train`` split of ``data.dataset`` as the run reads it, without a transform (less the
    ``data.validation_classes``, :mod:`dmlkit.data.holdout`)."""
    raw = _training_classes(cfg)
    if cfg.data.validation_classes:
        return hold_out_classes(raw, cfg.data.validation_classes)[0]
    return raw


def _own_test_side(cfg: RunConfig, dataset: str | None, root: str | Path | None) -> bool:
    return dataset in (None, cfg.data.dataset) and root is None


def read_test_side(cfg: RunConfig, dataset: str | None = None, root: str | Path | None = None) -> EvalSplit:
    """The test side of ``dataset`` (default: the run's) as the run reads it, checked, without a transform.

    The run's own test side is its validation classes when ``data.validation_classes`` is set."""
    spec, path = _other(cfg, dataset, root)
    if cfg.data.validation_classes and _own_test_side(cfg, dataset, root):
        split = EvalSplit(hold_out_classes(_training_classes(cfg), cfg.data.validation_classes)[1])
        where = f"the validation classes of dataset {spec.name!r} (data.validation_classes)"
    else:
        split = spec.eval_split(path)
        where = f"dataset {spec.name!r}" + (f" at {path}" if path else "")
    check_test_side(split, where)
    mode = get_dataset_spec(cfg.data.dataset).mode
    read = [
        None if d is None else d.reading(mode=mode, background=cfg.data.background)
        for d in (split.query, split.gallery)
    ]
    return EvalSplit(*read)


def _reading(cfg: RunConfig, dataset: DMLDataset) -> DMLDataset:
    """``dataset`` read as the run reads images (mode, background), decoded into memory if ``data.cache`` says so."""
    mode = get_dataset_spec(cfg.data.dataset).mode
    return cached(dataset.reading(mode=mode, background=cfg.data.background), cfg.data.cache)


def build_training_sets(cfg: RunConfig, hide_labels: bool) -> TrainingSets:
    """The ``train`` split of ``data.dataset`` with both transforms (sharing one decoded copy when cached)."""
    raw = _reading(cfg, read_training_split(cfg))
    train, train_eval = prepared(cfg, raw, "train"), prepared(cfg, raw, "eval")
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
    split, tf = read_test_side(cfg, dataset, root), transform(cfg, "eval")
    query = _reading(cfg, split.query).with_transform(tf)
    return EvalSplit(query, None if split.gallery is None else _reading(cfg, split.gallery).with_transform(tf))


def build_split(cfg: RunConfig, split: str, dataset: str | None = None, root: str | Path | None = None) -> DMLDataset:
    """Split ``split`` of ``dataset`` (default: the run's) with the run's eval transform (``dmlkit embed``)."""
    spec, path = _other(cfg, dataset, root)
    check_split(spec, split)
    return prepared(cfg, spec.build(path, split), "eval")
