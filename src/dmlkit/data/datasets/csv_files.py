"""A user's own images listed in CSV files with ``path,label`` columns.

``ROOT/train.csv`` and ``ROOT/test.csv``; or ``ROOT/query.csv`` + ``ROOT/gallery.csv`` in
place of ``test.csv`` for query/gallery evaluation (used when ``query.csv`` exists). Other
columns are ignored. Relative paths are taken from the CSV file's folder; labels are
strings (``class_names`` keep them), mapped to ``0..C-1`` in sorted order, over query and
gallery together.
"""

from __future__ import annotations

import csv
from pathlib import Path

from dmlkit.data.base import DatasetSpec, DMLDataset, EvalSplit, ImageFileDataset, contiguous_labels
from dmlkit.data.registry import check_split, register_dataset, require_file, require_images, require_root
from dmlkit.errors import DatasetError

SPLITS = ("train", "test", "query", "gallery")


def read_csv(path: Path) -> list[tuple[Path, str]]:
    """``(image path, label)`` rows of one CSV file; errors name the file and line."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            table = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"csv: cannot read {path}: {exc}") from exc
    if not table:
        raise DatasetError(f"csv: {path} is empty; expected a header line 'path,label'")
    header = [name.strip() for name in table[0]]
    missing = [name for name in ("path", "label") if name not in header]
    if missing:
        raise DatasetError(
            f"csv: {path}, line 1: header must have the columns 'path' and 'label'; missing {missing}, got {header}"
        )
    col_path, col_label = header.index("path"), header.index("label")
    rows = []
    for number, row in enumerate(table[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DatasetError(f"csv: {path}, line {number}: expected {len(header)} fields, got {len(row)}: {row}")
        image, label = row[col_path].strip(), row[col_label].strip()
        if not image or not label:
            raise DatasetError(f"csv: {path}, line {number}: empty 'path' or 'label'")
        rows.append((Path(image) if Path(image).is_absolute() else path.parent / image, label))
    if not rows:
        raise DatasetError(f"csv: {path} lists no images")
    return rows


def build(root: Path | None, split: str) -> DMLDataset:
    check_split(SPEC, split)
    root = require_root(SPEC, root)
    if split in ("query", "gallery"):
        query = read_csv(require_file(SPEC, root / "query.csv"))
        gallery = read_csv(require_file(SPEC, root / "gallery.csv"))
        _, names = contiguous_labels([lab for _, lab in query + gallery])
        lookup = {n: i for i, n in enumerate(names)}
        rows = query if split == "query" else gallery
        labels = [lookup[lab] for _, lab in rows]
    else:
        rows = read_csv(require_file(SPEC, root / f"{split}.csv"))
        label_array, names = contiguous_labels([lab for _, lab in rows])
        labels = label_array.tolist()
    paths = [p for p, _ in rows]
    require_images(SPEC, paths, root / f"{split}.csv")
    return ImageFileDataset(paths, labels, names, name=f"csv/{split}")


class _CsvSpec(DatasetSpec):
    """The csv spec: query/gallery evaluation when ``query.csv`` exists, else ``test.csv``."""

    def eval_split(self, root: Path | None) -> EvalSplit:
        root = require_root(self, root)
        if (root / "query.csv").is_file():
            return EvalSplit(self.build(root, "query"), self.build(root, "gallery"))
        return EvalSplit(self.build(root, "test"))


SPEC = register_dataset(
    _CsvSpec(
        name="csv",
        description="your images listed in CSV files (columns path,label)",
        layout=(
            "ROOT/train.csv   header 'path,label'; paths relative to the CSV's folder or absolute\n"
            "ROOT/test.csv    (or ROOT/query.csv + ROOT/gallery.csv for query/gallery evaluation)"
        ),
        splits=SPLITS,
        mode="RGB",
        build=build,
    )
)
