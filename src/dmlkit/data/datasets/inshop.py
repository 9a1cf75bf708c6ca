"""In-Shop Clothes Retrieval (DeepFashion): train items, and query vs gallery on the test items.

Query and gallery share one label space: their item ids are mapped to labels together, so
``query.class_names == gallery.class_names`` and a label means the same item in both.
"""

from __future__ import annotations

from pathlib import Path

from dmlkit.data.annotations import read_rows, to_int
from dmlkit.data.base import DatasetSpec, DMLDataset, ImageFileDataset, contiguous_labels
from dmlkit.data.registry import check_split, register_dataset, require_file, require_images, require_root
from dmlkit.errors import DatasetError

STATUSES = ("train", "query", "gallery")
HEADER = ("image_name", "item_id", "evaluation_status")


def read_partition(path: Path) -> list[tuple[str, str, str]]:
    """``(image_name, item_id, evaluation_status)`` rows of ``list_eval_partition.txt``.

    Line 1 holds the row count (checked), line 2 the header (checked).
    """
    rows = read_rows(path, 3, "inshop", skip=2, header=HEADER)
    first = path.read_text(encoding="utf-8").splitlines()[0].split()
    count = to_int(first[0] if first else "", path, 1, "inshop", "the image count")
    if count != len(rows):
        raise DatasetError(f"inshop: {path}, line 1: announces {count} images but {len(rows)} rows follow")
    for number, fields in rows:
        if fields[2] not in STATUSES:
            raise DatasetError(
                f"inshop: {path}, line {number}: evaluation_status must be one of {STATUSES}, got {fields[2]!r}"
            )
    return [(f[0], f[1], f[2]) for _, f in rows]


def build(root: Path | None, split: str) -> DMLDataset:
    check_split(SPEC, split)
    root = require_root(SPEC, root)
    path = require_file(SPEC, root / "Eval" / "list_eval_partition.txt")
    rows = read_partition(path)
    if split == "train":
        chosen = [r for r in rows if r[2] == "train"]
        labels, names = contiguous_labels([item for _, item, _ in chosen])
    else:  # query and gallery: item ids mapped over query ∪ gallery together
        _, names = contiguous_labels([item for _, item, status in rows if status != "train"])
        lookup = {name: i for i, name in enumerate(names)}
        chosen = [r for r in rows if r[2] == split]
        labels = [lookup[item] for _, item, _ in chosen]
    paths = [root / image for image, _, _ in chosen]
    require_images(SPEC, paths, path)
    return ImageFileDataset(paths, labels, names, name=f"inshop/{split}")


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
        splits=STATUSES,
        mode="RGB",
        build=build,
    )
)
