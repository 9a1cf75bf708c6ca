"""A view of a dataset with its labels hidden, for unsupervised training.

The trainer gives an unsupervised method (``Method.uses_labels = False``) its training set only
through this view: items carry ``image`` and ``index`` but no ``label``, and reading ``labels``,
``class_names`` or ``num_classes`` raises :class:`LabelAccessError`. The test side keeps its labels
(evaluation needs them).
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from dmlkit.data.base import DMLDataset, Transform
from dmlkit.errors import DmlkitError


class LabelAccessError(DmlkitError, RuntimeError):
    """Raised when an unsupervised run reads a training label."""


class UnlabeledDataset(DMLDataset):
    """``dataset``'s images (with ``transform``, by default the dataset's own) and no labels.

    Example:
        >>> from dmlkit.data.datasets.digits import build
        >>> view = UnlabeledDataset(build(None, "train"))
        >>> sorted(view[0])
        ['image', 'index']
    """

    hides_labels = True

    def __init__(self, dataset: DMLDataset, transform: Transform | None = None) -> None:
        # DMLDataset.__init__ is not called: it would store the labels
        self._dataset = dataset
        self._length = len(dataset)
        self.mode = dataset.mode
        self.transform = transform if transform is not None else dataset.transform
        self.name = f"{dataset.name} (labels hidden)"

    def _refuse(self, what: str) -> LabelAccessError:
        return LabelAccessError(
            f"{what} of the training set {self._dataset.name!r} read during unsupervised training: "
            "the method must not use training labels"
        )

    @property
    def labels(self):  # type: ignore[override]
        raise self._refuse("labels")

    @property
    def class_names(self):  # type: ignore[override]
        raise self._refuse("class names")

    @property
    def num_classes(self) -> int:
        raise self._refuse("the number of classes")

    def __len__(self) -> int:
        return self._length

    def load_image(self, index: int) -> Image.Image:
        return self._dataset.load_image(index)

    def describe(self, index: int) -> str:
        return self._dataset.describe(index)

    def raw_bytes(self, index: int) -> bytes:
        return self._dataset.raw_bytes(index)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = self.load_image(index)
        if self.transform is not None:
            image = self.transform(image)
        return {"image": image, "index": int(index)}
