"""In-Shop Clothes Retrieval (DeepFashion): train items, and query vs gallery on the test items."""

from __future__ import annotations

from pathlib import Path

from dmlkit.data.annotations import read_rows
from dmlkit.data.base import DatasetSpec, DMLDataset, ImageFileDataset, contiguous_labels
from dmlkit.data.registry import check_split, register_dataset, require_file, require_root
from dmlkit.errors import DatasetError

STATUSES = ("train", "query", "gallery")


def build(root: Path | None, split: str) -> DMLDataset:
    check_split(SPEC, split)
    root = require_root(SPEC, root)
    path = require_file(SPEC, root / "Eval" / "list_eval_partition.txt")
    rows = read_rows(path, 3, "inshop", skip=2)  # line 1: count, line 2: header
    for number, fields in rows:
        if fields[2] not in STATUSES:
            raise DatasetError(
                f"inshop: {path}, line {number}: evaluation_status must be one of {STATUSES}, got {fields[2]!r}"
            )
    # query and gallery share one label space: item ids are mapped over both together
    space = [f for _, f in rows if (f[2] == "train") == (split == "train")]
    _, names = contiguous_labels([f[1] for f in space])
    lookup = {name: i for i, name in enumerate(names)}
    chosen = [f for f in space if f[2] == split]
    if split == "train":
        labels, names = contiguous_labels([f[1] for f in chosen])
    else:
        labels = [lookup[f[1]] for f in chosen]
    return ImageFileDataset([root / f[0] for f in chosen], labels, names, name=f"inshop/{split}")


SPEC = register_dataset(
    DatasetSpec(
        name="inshop",
        description="In-Shop Clothes Retrieval; train 3,997 items (25,882 images), query 14,218 vs gallery 12,612",
        layout=(
            "ROOT/Eval/list_eval_partition.txt   line 1: count, line 2: 'image_name item_id evaluation_status',\n"
            "                                    then rows like 'img/WOMEN/Dresses/id_00000002/02_1_front.jpg "
            "id_00000002 train'\n"
            "ROOT/img/...                        (image_name is relative to ROOT)"
        ),
        splits=("train", "query", "gallery"),
        mode="RGB",
        build=build,
    )
)
