"""Cars196 (Krause et al. 2013) from the original ``cars_annos.mat``; classes 1–98 / 99–196.

The zero-shot split ignores the annotation's ``test`` flag (that is the classification split).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dmlkit.data.base import DatasetSpec, DMLDataset, ImageFileDataset, contiguous_labels
from dmlkit.data.registry import check_split, register_dataset, require_file, require_images, require_root
from dmlkit.errors import DatasetError

TRAIN_CLASSES = range(1, 99)


def _scalar(value: object) -> object:
    while isinstance(value, np.ndarray):
        value = value.reshape(-1)[0]
    return value


def read_annotations(path: Path) -> list[tuple[str, int]]:
    """``(relative_im_path, class)`` for every annotation of ``cars_annos.mat``."""
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except Exception as exc:  # scipy raises several types for corrupt files
        raise DatasetError(f"cars196: cannot read {path}: {exc}") from exc
    if "annotations" not in mat:
        raise DatasetError(f"cars196: {path} has no 'annotations' struct array")
    annos = mat["annotations"].reshape(-1)
    fields = annos.dtype.names or ()
    for name in ("relative_im_path", "class"):
        if name not in fields:
            raise DatasetError(f"cars196: {path}: annotations lack the field {name!r} (fields: {fields})")
    rows = []
    for number, anno in enumerate(annos, start=1):
        try:
            rows.append((str(_scalar(anno["relative_im_path"])), int(_scalar(anno["class"]))))
        except (IndexError, TypeError, ValueError) as exc:
            raise DatasetError(f"cars196: {path}: annotation {number} is malformed: {exc}") from exc
    return rows


def build(root: Path | None, split: str) -> DMLDataset:
    check_split(SPEC, split)
    root = require_root(SPEC, root)
    mat = require_file(SPEC, root / "cars_annos.mat")
    want_train = split == "train"
    rows = [(p, c) for p, c in read_annotations(mat) if (c in TRAIN_CLASSES) == want_train]
    labels, names = contiguous_labels([c for _, c in rows])
    paths = [root / p for p, _ in rows]
    require_images(SPEC, paths, mat)
    return ImageFileDataset(paths, labels, names, name=f"cars196/{split}")


SPEC = register_dataset(
    DatasetSpec(
        name="cars196",
        description="Stanford Cars196; train = classes 1-98 (8,054 images), test = 99-196 (8,131)",
        layout=(
            "ROOT/cars_annos.mat   original annotations (relative_im_path, class 1..196, ...)\n"
            "ROOT/car_ims/000001.jpg ... 016185.jpg"
        ),
        splits=("train", "test"),
        mode="RGB",
        build=build,
    )
)
