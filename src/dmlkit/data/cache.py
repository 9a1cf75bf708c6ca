"""Decoded images kept in memory: a small dataset is decoded once instead of every epoch.

``data.cache`` (a run's training set and its test side):

* ``auto`` (default): in memory when the decoded images are estimated (from the first image) to take at
  most :data:`AUTO_LIMIT_MB`; files are read as they are otherwise (CUB, Cars, SOP at their photo sizes).
* ``memory``: always; ``none``: never.

The images are decoded in the main process before training, in parallel threads (Pillow releases
the GIL while decoding), in the run's mode and with its background, so what a transform receives is
the image it would have read from the file. A dataset already in memory (digits, MNIST) is left as it is.
DataLoader workers share the decoded arrays with the main process (fork).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
from PIL import Image

from dmlkit.data.base import ArrayDataset, DMLDataset

Cache = Literal["auto", "memory", "none"]
CACHES: tuple[str, ...] = ("auto", "memory", "none")
#: The most memory ``auto`` gives one decoded dataset (MB).
AUTO_LIMIT_MB = 1024


class DecodedDataset(DMLDataset):
    """The images of ``source`` decoded into memory (uint8), read back as the same PIL images.

    ``describe``, ``raw_bytes``, the labels and the class names are the source's; ``reading`` another mode or background
    goes back to the source (the decoded images are in this one's).
    """

    def __init__(self, source: DMLDataset, threads: int | None = None) -> None:
        # not DMLDataset.__init__: the labels stay the source's, read only when asked for (an
        # unsupervised run hides them behind its own view, after this one)
        self.source, self.mode, self.transform, self.name = source, source.mode, source.transform, source.name
        self.background = source.background
        with ThreadPoolExecutor(max_workers=threads or min(8, os.cpu_count() or 1)) as pool:
            images = list(pool.map(lambda i: np.asarray(source.load_image(i)), range(len(source))))
        shapes = {im.shape for im in images}
        self.images: np.ndarray | list[np.ndarray] = np.stack(images) if len(shapes) == 1 else images

    @property
    def labels(self) -> np.ndarray:  # type: ignore[override]
        return self.source.labels

    @property
    def class_names(self) -> list[str]:  # type: ignore[override]
        return self.source.class_names

    def __len__(self) -> int:
        return len(self.images)

    @property
    def nbytes(self) -> int:
        """Memory the decoded images take."""
        if isinstance(self.images, np.ndarray):
            return self.images.nbytes
        return sum(im.nbytes for im in self.images)

    def load_image(self, index: int) -> Image.Image:
        return Image.fromarray(self.images[index])

    def describe(self, index: int) -> str:
        return self.source.describe(index)

    def raw_bytes(self, index: int) -> bytes:
        return self.source.raw_bytes(index)

    def reading(self, mode: str | None = None, background: Any = None) -> DMLDataset:
        same = (mode is None or mode == self.mode) and (
            background is None or tuple(int(c) for c in background) == self.background
        )
        return self if same else self.source.reading(mode, background)


def estimated_mb(dataset: DMLDataset) -> float:
    """Decoded size of ``dataset`` if every image were the size of its first (MB)."""
    if len(dataset) == 0:
        return 0.0
    return np.asarray(dataset.load_image(0)).nbytes * len(dataset) / 2**20


def cached(dataset: DMLDataset, cache: str) -> DMLDataset:
    """``dataset`` decoded into memory when ``cache`` says so (see the module docstring)."""
    if cache == "none" or isinstance(dataset, (ArrayDataset, DecodedDataset)) or len(dataset) == 0:
        return dataset
    if cache == "auto" and estimated_mb(dataset) > AUTO_LIMIT_MB:
        return dataset
    return DecodedDataset(dataset)
