"""A user's own images listed in CSV files with ``path,label`` columns.

``ROOT/train.csv`` and ``ROOT/test.csv``; or ``ROOT/query.csv`` + ``ROOT/gallery.csv`` in
place of ``test.csv`` for query/gallery evaluation. Relative paths are taken from the
CSV file's folder.
"""

from __future__ import annotations

import csv
from pathlib import Path

from dmlkit.data.base import DatasetSpec, DMLDataset, EvalSplit, ImageFileDataset, contiguous_labels
from dmlkit.data.registry import register_dataset, require_file, require_root
from dmlkit.errors import ConfigError, DatasetError

SPLITS = ("train", "test", "query", "gallery")


def read_csv(path: Path) -> list[tuple[Path, str]]:
    """``(image path, label)`` rows of one CSV file; errors name the file and line."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = {"path", "label"} - set(reader.fieldnames or ())
            if missing:
                raise DatasetError(
                    f"csv: {path}: header must have the columns 'path' and 'label'; missing {sorted(missing)}"
                )
            rows = []
            for row in reader:
                line = reader.line_num
                if not row.get("path") or row.get("label") in (None, ""):
                    raise DatasetError(f"csv: {path}, line {line}: empty 'path' or 'label'")
                image = Path(row["path"])
                rows.append((image if image.is_absolute() else path.parent / image, row["label"].strip()))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"csv: cannot read {path}: {exc}") from exc
    if not rows:
        raise DatasetError(f"csv: {path} lists no images")
    return rows


def _dataset(rows: list[tuple[Path, str]], labels: list[int], names: list[str], split: str) -> DMLDataset:
    return ImageFileDataset([p for p, _ in rows], labels, names, name=f"csv/{split}")


def build(root: Path | None, split: str) -> DMLDataset:
    if split not in SPLITS:
        raise ConfigError(f"dataset 'csv' has no split {split!r}; valid splits: {', '.join(SPLITS)}")
    root = require_root(SPEC, root)
    if split in ("query", "gallery"):
        query = read_csv(require_file(SPEC, root / "query.csv"))
        gallery = read_csv(require_file(SPEC, root / "gallery.csv"))
        _, names = contiguous_labels([lab for _, lab in query + gallery])
        lookup = {n: i for i, n in enumerate(names)}
        rows = query if split == "query" else gallery
        return _dataset(rows, [lookup[lab] for _, lab in rows], names, split)
    rows = read_csv(require_file(SPEC, root / f"{split}.csv"))
    labels, names = contiguous_labels([lab for _, lab in rows])
    return _dataset(rows, labels.tolist(), names, split)


def eval_split(root: Path | None) -> EvalSplit:
    root = require_root(SPEC, root)
    if (root / "query.csv").is_file():
        return EvalSplit(build(root, "query"), build(root, "gallery"))
    return EvalSplit(build(root, "test"))


class _CsvSpec(DatasetSpec):
    def eval_split(self, root: Path | None) -> EvalSplit:
        return eval_split(root)


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
