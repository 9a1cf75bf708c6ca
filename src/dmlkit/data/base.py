"""Dataset types shared by every loader: image sources, splits and dataset specs.

A dataset item is a dict ``{"image": Tensor, "label": int, "index": int}``; extra
fields may be added by methods without changing signatures. Labels of a split are
contiguous ``0..C-1``; ``class_names[label]`` keeps the official class id or name.
"""

from __future__ import annotations

import threading
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dmlkit.data.decode import WHITE, open_image
from dmlkit.errors import DatasetError

Transform = Callable[[Image.Image], Any]


def contiguous_labels(raw: Sequence[Any]) -> tuple[np.ndarray, list[str]]:
    """Map raw class ids to ``0..C-1`` in sorted order of the raw ids.

    Returns the int64 label array and the list of class names (``str(raw id)``).
    """
    uniques = sorted(set(raw), key=lambda v: (isinstance(v, str), v))
    lookup = {v: i for i, v in enumerate(uniques)}
    return np.asarray([lookup[v] for v in raw], dtype=np.int64), [str(v) for v in uniques]


class DMLDataset:
    """Base class: ``len(labels)`` images with contiguous labels and an optional transform.

    Subclasses implement :meth:`load_image` (returning a PIL image in ``self.mode``).
    """

    #: Whether the labels are hidden (:class:`~dmlkit.data.unlabeled.UnlabeledDataset`).
    hides_labels: bool = False
    #: The colour transparent images are composited onto (``data.background``; :mod:`dmlkit.data.decode`).
    background: tuple[int, ...] = WHITE

    def __init__(
        self,
        labels: np.ndarray,
        class_names: list[str],
        mode: str = "RGB",
        transform: Transform | None = None,
        name: str = "dataset",
    ) -> None:
        self.labels = np.asarray(labels, dtype=np.int64)
        self.class_names = list(class_names)
        if mode not in ("RGB", "L"):
            raise ValueError(f"mode must be 'RGB' or 'L', got {mode!r}")
        self.mode = mode
        self.transform = transform
        self.name = name

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.labels)

    def load_image(self, index: int) -> Image.Image:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self, index: int) -> str:
        """Where item ``index`` comes from (a path); used in error messages and embeddings files."""
        return f"{self.name}[{index}]"

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = self.load_image(index)
        if self.transform is not None:
            image = self.transform(image)
        return {"image": image, "label": int(self.labels[index]), "index": int(index)}

    def _clone(self, **changes: Any) -> DMLDataset:
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.__dict__.update(changes)
        return clone

    def with_transform(self, transform: Transform | None) -> DMLDataset:
        """A shallow copy that applies ``transform``."""
        return self._clone(transform=transform)

    def reading(self, mode: str | None = None, background: Sequence[int] | None = None) -> DMLDataset:
        """A shallow copy that decodes images to ``mode`` (``RGB``/``L``: a trained model's input) and
        composites transparent ones onto ``background`` (see :mod:`dmlkit.data.decode`)."""
        changes: dict[str, Any] = {}
        if mode is not None:
            if mode not in ("RGB", "L"):
                raise ValueError(f"mode must be 'RGB' or 'L', got {mode!r}")
            changes["mode"] = mode
        if background is not None:
            changes["background"] = tuple(int(c) for c in background)
        return self._clone(**changes)

    def raw_bytes(self, index: int) -> bytes:
        """The stored bytes of item ``index`` (a file's content): what ``dmlkit check-data`` compares."""
        return np.asarray(self.load_image(index)).tobytes()


class ImageFileDataset(DMLDataset):
    """Images stored as files on disk (CUB, Cars, SOP, In-Shop, folder, csv)."""

    def __init__(self, paths: Sequence[Path], labels: np.ndarray, class_names: list[str], **kw: Any):
        super().__init__(labels, class_names, **kw)
        self.paths = [Path(p) for p in paths]
        if len(self.paths) != len(self.labels):
            raise ValueError("paths and labels differ in length")

    def load_image(self, index: int) -> Image.Image:
        return open_image(self.paths[index], self.mode, str(self.paths[index]), self.background)

    def raw_bytes(self, index: int) -> bytes:
        try:
            return self.paths[index].read_bytes()
        except OSError as exc:
            raise DatasetError(f"cannot read image {self.paths[index]}: {exc}") from exc

    def describe(self, index: int) -> str:
        return str(self.paths[index])


class ZipImageDataset(DMLDataset):
    """Images read from members of a zip archive (Omniglot's official zips).

    The archive is opened lazily once per process, so the dataset works with
    DataLoader worker processes.
    """

    def __init__(self, zip_path: Path, members: Sequence[str], labels: np.ndarray, class_names: list[str], **kw: Any):
        super().__init__(labels, class_names, **kw)
        self.zip_path = Path(zip_path)
        self.members = list(members)
        self._local = threading.local()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_local", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def _archive(self) -> zipfile.ZipFile:
        archive = getattr(self._local, "archive", None)
        if archive is None:
            archive = zipfile.ZipFile(self.zip_path)
            self._local.archive = archive
        return archive

    def load_image(self, index: int) -> Image.Image:
        return open_image(self.raw_bytes(index), self.mode, self.describe(index), self.background)

    def raw_bytes(self, index: int) -> bytes:
        try:
            return self._archive().read(self.members[index])
        except (KeyError, zipfile.BadZipFile, OSError) as exc:
            raise DatasetError(f"cannot read {self.describe(index)}: {exc}") from exc

    def describe(self, index: int) -> str:
        return f"{self.zip_path}:{self.members[index]}"


class ArrayDataset(DMLDataset):
    """Images held in memory as a uint8 array ``N×H×W`` (gray) or ``N×H×W×3`` (digits, MNIST)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, class_names: list[str], **kw: Any):
        kw.setdefault("mode", "L" if images.ndim == 3 else "RGB")
        super().__init__(labels, class_names, **kw)
        if images.dtype != np.uint8:
            raise ValueError(f"images must be uint8, got {images.dtype}")
        if len(images) != len(self.labels):
            raise ValueError("images and labels differ in length")
        self.images = images

    def load_image(self, index: int) -> Image.Image:
        return Image.fromarray(self.images[index]).convert(self.mode)

    def raw_bytes(self, index: int) -> bytes:
        return self.images[index].tobytes()


@dataclass
class EvalSplit:
    """The evaluation side of a dataset.

    ``gallery is None`` means every query searches all other queries (leave-one-out,
    CUB/Cars/SOP); otherwise queries search the gallery (In-Shop). Query and gallery
    labels share one label space.
    """

    query: DMLDataset
    gallery: DMLDataset | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset known to dmlkit: how to build it and what layout it expects.

    ``build(root, split)`` returns a :class:`DMLDataset` without transform for
    ``split`` in ``splits``; ``root`` is ``None`` for ``bundled`` data (shipped with a library,
    such as scikit-learn's digits), which reads no root.
    """

    name: str
    description: str
    layout: str
    splits: tuple[str, ...]
    mode: str
    build: Callable[[Path | None, str], DMLDataset]
    default_image_size: int = 224
    bundled: bool = False

    def eval_split(self, root: Path | None) -> EvalSplit:
        """Query/gallery datasets of the test side."""
        if "query" in self.splits:
            return EvalSplit(self.build(root, "query"), self.build(root, "gallery"))
        return EvalSplit(self.build(root, "test"))


def stack_batch(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Collate dict items into a dict batch (tensors stacked, ints to a tensor)."""
    import torch  # here, so that listing datasets (``dmlkit datasets``) does not import torch

    out: dict[str, Any] = {}
    for key in items[0]:
        values = [it[key] for it in items]
        if isinstance(values[0], torch.Tensor):
            out[key] = torch.stack(values)
        elif isinstance(values[0], (int, np.integer)):
            out[key] = torch.as_tensor(values, dtype=torch.long)
        else:
            out[key] = values
    return out
