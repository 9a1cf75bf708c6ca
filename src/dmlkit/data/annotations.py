"""Reading the whitespace-separated annotation files of the official dataset releases."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dmlkit.errors import DatasetError


def read_rows(
    path: Path, columns: int, dataset: str, skip: int = 0, header: Sequence[str] | None = None
) -> list[tuple[int, list[str]]]:
    """Rows of ``path`` split on whitespace, as ``(line_number, fields)``.

    Blank lines are ignored; the first ``skip`` lines are dropped. When ``header`` is given,
    line ``skip`` must start with those column names (so a file missing its header is not
    read with its first row dropped). A row with fewer than ``columns`` fields raises a
    DatasetError naming the file and line.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{dataset}: cannot read {path}: {exc}") from exc
    if header is not None:
        found = lines[skip - 1].split() if len(lines) >= skip else []
        if found[: len(header)] != list(header):
            raise DatasetError(
                f"{dataset}: {path}, line {skip}: expected the header {' '.join(header)!r}, got {' '.join(found)!r}"
            )
    rows = []
    for number, line in enumerate(lines, start=1):
        if number <= skip or not line.strip():
            continue
        fields = line.split()
        if len(fields) < columns:
            raise DatasetError(
                f"{dataset}: {path}, line {number}: expected {columns} fields, got {len(fields)}: {line!r}"
            )
        rows.append((number, fields))
    return rows


def to_int(value: str, path: Path, number: int, dataset: str, what: str) -> int:
    """``int(value)``; a DatasetError naming the file, line and column otherwise."""
    try:
        return int(value)
    except ValueError as exc:
        raise DatasetError(f"{dataset}: {path}, line {number}: {what} must be an integer, got {value!r}") from exc
