"""Stanford Online Products (Song et al. 2016) from ``Ebay_train.txt`` / ``Ebay_test.txt``."""

from __future__ import annotations

from pathlib import Path

from dmlkit.data.annotations import read_rows, to_int
from dmlkit.data.base import DatasetSpec, DMLDataset, ImageFileDataset, contiguous_labels
from dmlkit.data.registry import check_split, register_dataset, require_file, require_images, require_root

FILES = {"train": "Ebay_train.txt", "test": "Ebay_test.txt"}
HEADER = ("image_id", "class_id", "super_class_id", "path")


def build(root: Path | None, split: str) -> DMLDataset:
    check_split(SPEC, split)
    root = require_root(SPEC, root)
    path = require_file(SPEC, root / FILES[split])
    rows = read_rows(path, 4, "sop", skip=1, header=HEADER)
    labels, names = contiguous_labels([to_int(f[1], path, n, "sop", "class_id") for n, f in rows])
    paths = [root / f[3] for _, f in rows]
    require_images(SPEC, paths, path)
    return ImageFileDataset(paths, labels, names, name=f"sop/{split}")


SPEC = register_dataset(
    DatasetSpec(
        name="sop",
        description="Stanford Online Products; train 11,318 classes (59,551 images), test 11,316 (60,502)",
        layout=(
            "ROOT/Ebay_train.txt   header 'image_id class_id super_class_id path', then one row per image\n"
            "ROOT/Ebay_test.txt\n"
            "ROOT/<super_class>_final/<file>.JPG   (paths relative to ROOT)"
        ),
        splits=("train", "test"),
        mode="RGB",
        build=build,
    )
)
