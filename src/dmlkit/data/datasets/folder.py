"""A user's own images in class folders.

Layout ``ROOT/train/<class>/*`` and ``ROOT/test/<class>/*``; or, without those two folders,
``ROOT/<class>/*`` split by class: the first half of the class names in sorted order train,
the rest test (zero-shot, as in the benchmarks).
"""

from __future__ import annotations

from pathlib import Path

from dmlkit.data.base import DatasetSpec, DMLDataset, ImageFileDataset, contiguous_labels
from dmlkit.data.registry import check_split, register_dataset, require_root
from dmlkit.errors import DatasetError

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


def images_by_class(folder: Path) -> dict[str, list[Path]]:
    """``{class name: sorted image paths}`` for every subfolder of ``folder`` holding images."""
    out = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(p for p in sub.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
        if files:
            out[sub.name] = files
    return out


def build(root: Path | None, split: str) -> DMLDataset:
    check_split(SPEC, split)
    root = require_root(SPEC, root)
    if (root / "train").is_dir() and (root / "test").is_dir():
        classes = images_by_class(root / split)
    else:
        everything = images_by_class(root)
        names = sorted(everything)
        half = (len(names) + 1) // 2
        chosen = names[:half] if split == "train" else names[half:]
        classes = {n: everything[n] for n in chosen}
    if not classes:
        raise DatasetError(
            f"folder: no class folders with images for split {split!r} under {root}; layout:\n{SPEC.layout}"
        )
    paths = [p for files in classes.values() for p in files]
    labels, names = contiguous_labels([c for c, files in classes.items() for _ in files])
    return ImageFileDataset(paths, labels, names, name=f"folder/{split}")


SPEC = register_dataset(
    DatasetSpec(
        name="folder",
        description="your images in class folders; train/ and test/ subfolders, or classes split in half by name",
        layout=(
            "ROOT/train/<class>/<image>.jpg   and   ROOT/test/<class>/<image>.jpg\n"
            "or ROOT/<class>/<image>.jpg      (sorted class names: first half train, rest test)"
        ),
        splits=("train", "test"),
        mode="RGB",
        build=build,
    )
)
