"""Omniglot (Lake et al. 2015): background alphabets train, evaluation alphabets test."""

from __future__ import annotations

import zipfile
from pathlib import Path

from dmlkit.data.base import DatasetSpec, DMLDataset, ImageFileDataset, ZipImageDataset, contiguous_labels
from dmlkit.data.registry import check_split, register_dataset, require_root
from dmlkit.errors import DatasetError

FOLDERS = {"train": "images_background", "test": "images_evaluation"}


def _class_of(parts: tuple[str, ...]) -> str:
    """``Alphabet/characterNN`` from ``(..., alphabet, character, file)``."""
    return f"{parts[-3]}/{parts[-2]}"


def build(root: Path | None, split: str) -> DMLDataset:
    check_split(SPEC, split)
    root = require_root(SPEC, root)
    folder = FOLDERS[split]
    if (root / folder).is_dir():
        paths = sorted((root / folder).glob("*/*/*.png"))
        if not paths:
            raise DatasetError(f"omniglot: no PNG files under {root / folder}/<Alphabet>/<character>/")
        labels, names = contiguous_labels([_class_of(p.parts) for p in paths])
        return ImageFileDataset(paths, labels, names, mode="L", name=f"omniglot/{split}")
    archive = root / f"{folder}.zip"
    if not archive.is_file():
        raise DatasetError(f"omniglot: neither {root / folder}/ nor {archive} exists; layout:\n{SPEC.layout}")
    try:
        with zipfile.ZipFile(archive) as zf:
            members = sorted(n for n in zf.namelist() if n.endswith(".png") and n.count("/") == 3)
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"omniglot: {archive} is not a valid zip file: {exc}") from exc
    if not members:
        raise DatasetError(f"omniglot: {archive} holds no {folder}/<Alphabet>/<character>/*.png members")
    labels, names = contiguous_labels([_class_of(tuple(m.split("/"))) for m in members])
    return ZipImageDataset(archive, members, labels, names, mode="L", name=f"omniglot/{split}")


SPEC = register_dataset(
    DatasetSpec(
        name="omniglot",
        description="Omniglot characters; train = background (964 classes), test = evaluation (659 classes)",
        layout=(
            "ROOT/images_background.zip   (or the extracted folder ROOT/images_background/)\n"
            "ROOT/images_evaluation.zip   (or ROOT/images_evaluation/)\n"
            "  inside: images_background/<Alphabet>/characterNN/<drawing>_<rep>.png"
        ),
        splits=("train", "test"),
        mode="L",
        build=build,
        default_image_size=28,
    )
)
