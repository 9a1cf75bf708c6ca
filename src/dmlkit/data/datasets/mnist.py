"""MNIST from the official IDX files.

``mnist``: the zero-shot convention (ours): train on digits 0–4 of the train file, test on 5–9 of
t10k. ``mnist_closed``: the closed-set protocol of classification papers (and of the magnet-loss
experiment): the whole train file (60,000) for training, the whole t10k file (10,000) for testing,
all ten digits on both sides with the same labels.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from dmlkit.data.base import ArrayDataset, DatasetSpec, DMLDataset, contiguous_labels
from dmlkit.data.registry import check_split, register_dataset, require_root
from dmlkit.errors import DatasetError

TRAIN_CLASSES = (0, 1, 2, 3, 4)
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find(root: Path, stem: str) -> Path:
    for folder in (root, root / "MNIST" / "raw", root / "raw"):
        for name in (f"{stem}.gz", stem):
            if (folder / name).is_file():
                return folder / name
    raise DatasetError(f"mnist: {stem}.gz not found in {root} (nor in {root}/MNIST/raw); layout:\n{SPEC.layout}")


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read an IDX file (gzip or plain) and check its magic number and size.

    Magic 2051 is a ``N×rows×cols`` uint8 image file, 2049 a ``N`` uint8 label file.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"mnist: cannot read {path}: {exc}") from exc
    found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found != magic:
        raise DatasetError(f"mnist: {path} is not an IDX file with magic number {magic} (found {found})")
    ndim = data[3]
    offset = 4 + 4 * ndim
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if len(data) < offset or len(data) - offset != int(np.prod(dims)):
        raise DatasetError(
            f"mnist: {path} is truncated or padded: header says {dims}, found {len(data) - offset} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def _read_split(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_file, labels_file = FILES[split]
    images = read_idx(_find(root, images_file), 2051)
    labels = read_idx(_find(root, labels_file), 2049)
    if len(images) != len(labels):
        raise DatasetError(f"mnist: {images_file} has {len(images)} images but {labels_file} {len(labels)} labels")
    return images, labels


def build(root: Path | None, split: str) -> DMLDataset:
    check_split(SPEC, split)
    images, labels = _read_split(require_root(SPEC, root), split)
    keep = np.isin(labels, TRAIN_CLASSES)
    if split == "test":
        keep = ~keep
    lab, names = contiguous_labels(labels[keep].tolist())
    return ArrayDataset(np.ascontiguousarray(images[keep]), lab, names, mode="L", name=f"mnist/{split}")


def build_closed(root: Path | None, split: str) -> DMLDataset:
    check_split(CLOSED_SPEC, split)
    images, labels = _read_split(require_root(CLOSED_SPEC, root), split)
    lab, names = contiguous_labels(labels.tolist())
    return ArrayDataset(np.ascontiguousarray(images), lab, names, mode="L", name=f"mnist_closed/{split}")


_LAYOUT = (
    "ROOT/train-images-idx3-ubyte.gz\nROOT/train-labels-idx1-ubyte.gz\n"
    "ROOT/t10k-images-idx3-ubyte.gz\nROOT/t10k-labels-idx1-ubyte.gz\n"
    "(uncompressed files, or ROOT/MNIST/raw/ as torchvision keeps them, also work)"
)


SPEC = register_dataset(
    DatasetSpec(
        name="mnist",
        description="MNIST, official IDX files; train = train file digits 0-4, test = t10k digits 5-9",
        layout=_LAYOUT,
        splits=("train", "test"),
        mode="L",
        build=build,
        default_image_size=28,
    )
)

CLOSED_SPEC = register_dataset(
    DatasetSpec(
        name="mnist_closed",
        description="MNIST closed set: train = whole train file (60k), test = whole t10k (10k), digits 0-9 on both",
        layout=_LAYOUT,
        splits=("train", "test"),
        mode="L",
        build=build_closed,
        default_image_size=28,
    )
)
