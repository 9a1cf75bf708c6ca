"""Datasets by name (``data.dataset`` in a config), and the checks every loader shares.

Every image listed in an annotation file must exist when a split is built (one ``stat`` per
image, well under a second for SOP's 120k), so a wrong root, an archive not extracted or a
path missing in the middle of a CSV is reported before training starts. An image that exists
but cannot be decoded is named when it is loaded; ``dmlkit check-data`` decodes every image
up front.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from dmlkit.data.base import DatasetSpec, DMLDataset
from dmlkit.errors import ConfigError, DatasetError
from dmlkit.registry import Registry

DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to :data:`DATASETS` under ``spec.name``."""
    DATASETS.register(spec.name)(lambda: spec)
    return spec


def _load_builtins() -> None:
    import dmlkit.data.datasets  # noqa: F401  (registers the built-in datasets)


def dataset_names() -> list[str]:
    """Names of every registered dataset."""
    _load_builtins()
    return DATASETS.names()


def get_dataset_spec(name: str) -> DatasetSpec:
    """The spec registered as ``name``; a ConfigError listing the choices otherwise."""
    _load_builtins()
    return DATASETS.get(name, key="data.dataset")()


def check_split(spec: DatasetSpec, split: str) -> None:
    """A ConfigError naming the valid splits unless ``split`` is one of ``spec.splits``."""
    if split not in spec.splits:
        raise ConfigError(f"dataset {spec.name!r} has no split {split!r}; valid splits: {', '.join(spec.splits)}")


def require_root(spec: DatasetSpec, root: Path | None) -> Path:
    """``root`` as a Path if it is an existing folder; else a DatasetError showing the layout."""
    if root is None:
        raise DatasetError(
            f"dataset {spec.name!r} needs data.root (or --data-root): a folder laid out as\n{spec.layout}"
        )
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"dataset root {root} does not exist; {spec.name!r} expects a folder laid out as\n{spec.layout}"
        )
    return root


def require_file(spec: DatasetSpec, path: Path) -> Path:
    """``path`` if it is a file; else a DatasetError naming it and showing the layout."""
    if not path.is_file():
        raise DatasetError(f"{spec.name}: expected file {path} is missing; the dataset layout is\n{spec.layout}")
    return path


def require_images(spec: DatasetSpec, paths: Sequence[Path], listed_in: Path | str) -> None:
    """Check that every one of ``paths`` exists (see the module docstring)."""
    if not paths:
        raise DatasetError(f"{spec.name}: {listed_in} lists no images for this split")
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        more = f" (and {len(missing) - 1} more, e.g. {missing[-1]})" if len(missing) > 1 else ""
        raise DatasetError(
            f"{spec.name}: image {missing[0]} listed in {listed_in} is missing{more}; the dataset layout is\n"
            f"{spec.layout}"
        )


def build_split(name: str, root: Path | None, split: str) -> DMLDataset:
    """Build split ``split`` of dataset ``name`` (no transform)."""
    spec = get_dataset_spec(name)
    check_split(spec, split)
    return spec.build(root, split)
