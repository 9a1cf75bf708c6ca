"""scikit-learn's bundled 8×8 digits: the embedded default dataset (no download, no root)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dmlkit.data.base import ArrayDataset, DatasetSpec, DMLDataset, contiguous_labels
from dmlkit.data.registry import check_split, register_dataset

#: Zero-shot split: digits 0–4 train, 5–9 test (our convention, as for MNIST).
TRAIN_CLASSES = (0, 1, 2, 3, 4)


def build(root: Path | None, split: str) -> DMLDataset:
    from sklearn.datasets import load_digits

    check_split(SPEC, split)
    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # values 0..16 -> 0..255
    keep = np.isin(bunch.target, TRAIN_CLASSES)
    if split == "test":
        keep = ~keep
    labels, names = contiguous_labels(bunch.target[keep].tolist())
    return ArrayDataset(images[keep], labels, names, mode="L", name=f"digits/{split}")


SPEC = register_dataset(
    DatasetSpec(
        name="digits",
        description="scikit-learn's bundled 8x8 handwritten digits (1,797 images); train 0-4, test 5-9",
        layout="(bundled with scikit-learn; no files needed)",
        splits=("train", "test"),
        mode="L",
        build=build,
        default_image_size=8,
        bundled=True,
    )
)
