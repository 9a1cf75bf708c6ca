"""A validation split carved from the training classes (``data.validation_classes``).

Model selection on the test classes is tuning on the test set. With ``data.validation_classes: N`` a run
trains on all but the last ``N`` training classes (in label order: for Omniglot the last characters of
the last alphabets, so the validation classes are new alphabets, as the test side is) and evaluates on
those ``N`` classes, every image querying all the others. The test split is not read.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from dmlkit.data.base import DMLDataset
from dmlkit.errors import ConfigError


class ClassSubset(DMLDataset):
    """The images of ``base`` whose label is in ``classes``, relabelled ``0..len(classes)-1`` in that order."""

    def __init__(self, base: DMLDataset, classes: np.ndarray, name: str) -> None:
        classes = np.asarray(classes, dtype=np.int64)
        self.base = base
        self.rows = np.flatnonzero(np.isin(base.labels, classes))
        relabel = {int(c): i for i, c in enumerate(classes)}
        labels = np.array([relabel[int(y)] for y in base.labels[self.rows]], dtype=np.int64)
        super().__init__(labels, [base.class_names[c] for c in classes], base.mode, None, name)
        self.background = base.background

    def load_image(self, index: int) -> Image.Image:
        return self.base.load_image(int(self.rows[index]))

    def raw_bytes(self, index: int) -> bytes:
        return self.base.raw_bytes(int(self.rows[index]))

    def describe(self, index: int) -> str:
        return self.base.describe(int(self.rows[index]))

    def reading(self, mode: str | None = None, background: Any = None) -> DMLDataset:
        read = self.base.reading(mode=mode, background=background)
        return self._clone(base=read, mode=read.mode, background=read.background)


def hold_out_classes(
    dataset: DMLDataset, count: int, key: str = "data.validation_classes"
) -> tuple[DMLDataset, DMLDataset]:
    """``(training, validation)``: ``dataset`` without its last ``count`` classes, and those classes.

    Example:
        >>> from dmlkit.data.base import ArrayDataset
        >>> data = ArrayDataset(np.zeros((8, 2, 2), np.uint8), np.repeat(np.arange(4), 2), list("abcd"))
        >>> train, val = hold_out_classes(data, 2)
        >>> train.class_names, val.class_names, val.labels.tolist()
        (['a', 'b'], ['c', 'd'], [0, 0, 1, 1])
    """
    classes = dataset.num_classes
    if isinstance(count, bool) or not isinstance(count, int) or not 2 <= count <= classes - 2:
        raise ConfigError(
            f"config key {key!r}: expected a whole number of classes from 2 to {classes - 2} "
            f"(the training split of {dataset.name!r} has {classes}; both parts need two), got {count!r}"
        )
    order = np.arange(classes)
    train = ClassSubset(dataset, order[: classes - count], f"{dataset.name} (training classes)")
    validation = ClassSubset(dataset, order[classes - count :], f"{dataset.name} (validation classes)")
    return train, validation
