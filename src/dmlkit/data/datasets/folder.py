"""A user's own images in class folders.

Layout ``ROOT/train/<class>/*`` and ``ROOT/test/<class>/*`` (the two names in any case:
``Train/``, ``TEST/``); or, without those two folders, ``ROOT/<class>/*`` split by class: the
first half of the class names in sorted order (rounded up) train, the rest test, so train and
test classes are disjoint (zero-shot, as in the benchmarks). Other folders beside ``train/`` and
``test/`` (a ``val/``) are refused rather than ignored. Images may sit in nested folders below a
class folder; hidden files and folders (names starting with ".") are ignored.
"""

from __future__ import annotations

from pathlib import Path

from dmlkit.data.base import DatasetSpec, DMLDataset, ImageFileDataset, contiguous_labels
from dmlkit.data.registry import check_split, register_dataset, require_root
from dmlkit.errors import DatasetError

EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"})


def _visible(path: Path, base: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(base).parts)


def images_by_class(folder: Path) -> dict[str, list[Path]]:
    """``{class name: sorted image paths}`` for every subfolder of ``folder`` holding images."""
    out = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in sub.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file() and _visible(p, sub))
        if files:
            out[sub.name] = files
    return out


def split_classes(names: list[str], split: str) -> list[str]:
    """The classes of ``split`` in the flat layout: sorted names, first half (rounded up) train."""
    names = sorted(names)
    half = (len(names) + 1) // 2
    return names[:half] if split == "train" else names[half:]


def image_folder(folder: Path, mode: str = "RGB") -> DMLDataset:
    """Every image under ``folder`` (recursively, sorted), labelled by its parent folder's name."""
    if not folder.is_dir():
        raise DatasetError(f"--folder {folder}: not a folder")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
    if not paths:
        raise DatasetError(f"--folder {folder}: no images ({', '.join(sorted(EXTENSIONS))}) found")
    labels, names = contiguous_labels([p.parent.name for p in paths])
    return ImageFileDataset(paths, labels, names, mode=mode, name=f"folder:{folder}")


def build(root: Path | None, split: str) -> DMLDataset:
    check_split(SPEC, split)
    root = require_root(SPEC, root)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    found = {name: [p for p in folders if p.name.lower() == name] for name in ("train", "test")}
    for name, paths in found.items():
        if len(paths) > 1:
            raise DatasetError(
                f"folder: {root} has {' and '.join(p.name + '/' for p in paths)}: one {name}/ folder only"
            )
    if all(found.values()):
        others = [p.name + "/" for p in folders if p not in (found["train"][0], found["test"][0])]
        if others:
            raise DatasetError(
                f"folder: {root} has {found['train'][0].name}/ and {found['test'][0].name}/ and also "
                f"{', '.join(others)}; the layout has a train and a test split only: move the others out"
            )
        classes = images_by_class(found[split][0])
    elif any(found.values()):
        present, absent = ("train", "test") if found["train"] else ("test", "train")
        raise DatasetError(
            f"folder: {found[present][0]}/ exists but {root / absent}/ does not; use both, or neither "
            f"(then the classes are split by name); layout:\n{SPEC.layout}"
        )
    else:
        everything = images_by_class(root)
        classes = {n: everything[n] for n in split_classes(list(everything), split)}
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
            "or ROOT/<class>/<image>.jpg      (sorted class names: first half train, rest test)\n"
            f"image files: {', '.join(sorted(EXTENSIONS))}"
        ),
        splits=("train", "test"),
        mode="RGB",
        build=build,
    )
)
