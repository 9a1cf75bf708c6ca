"""Render the results tables of README.md and docs/*.md from the benchmark JSON that produced them.

A table in a Markdown file is declared by a comment naming its JSON (written by
``benchmarks/compare_seeds.py``), its rows (config = label) and its columns (key = header), and is
followed by the rendered table and a closing comment::

    <!-- table: benchmarks/results/dvml_omniglot.json
    rows: configs/omniglot_triplet.yaml = Triplet; configs/dvml_omniglot_triplet.yaml = DVML + Triplet
    columns: recall@1 = R@1; map@r = MAP@R; train/sigma = σ; time = training; seeds = seeds
    -->
    | ... |
    <!-- /table -->

The first line may name several JSON files, separated by commas: a table can set runs of several
benchmarks side by side. A row ``CONFIG@STEM`` takes CONFIG from the JSON file named ``STEM.json`` (the
same config run with other overrides in another benchmark); an unqualified row must be in exactly one. A JSON file
may also be a run's own ``metrics.json`` (copied into ``benchmarks/results/``), whose rows are ``untrained``, ``test``
(the final model) and ``best``. An optional ``corner:`` line sets the first header (default ``run``).

A figure quoted in the text is declared inline, ``<!-- value: PATH KEY FORMAT -->0.939<!-- /value -->``:
the entry ``KEY`` (dotted; list items by index) of the JSON at ``PATH``, formatted with Python's format
spec ``FORMAT`` (optional, e.g. ``.3f``).

A results table that cannot be rendered (its runs were made on a machine whose JSON was not kept) is
preceded by ``<!-- typed: REASON -->``; ``--check`` fails on any other table with a result cell (one that
starts with a decimal number, such as ``0.826 ± 0.001`` or ``10.65``) outside a declared block.

A row ``CONFIG:untrained`` shows the untrained model of that config's runs (``untrained_summary``).
A column key is a test metric (mean ± sample std over the seeds), a ``train/*`` value (the mean over
the seeds of each run's last logged value), a ``method/*`` value (the mean over the seeds of each run's
sum of it over its epochs; seconds when the key ends in ``_s``), ``time`` (mean training time) or
``seeds`` (completed runs).

Usage:
    python benchmarks/docs_tables.py docs/dvml.md [...]          # rewrite the tables in place
    python benchmarks/docs_tables.py --check docs/dvml.md [...]  # exit 1 if a table differs from its JSON
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- table: (?P<spec>.*?)-->\n)(?P<table>.*?)(<!-- /table -->)", re.S)
VALUE = re.compile(
    r"(<!-- value: (?P<path>\S+) (?P<key>\S+)(?: (?P<fmt>\S+))? -->)(?P<text>.*?)(<!-- /value -->)", re.S
)


def _pairs(text: str, what: str, source: str) -> list[tuple[str, str]]:
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(";"))):
        key, sep, label = item.partition("=")
        if not sep:
            raise SystemExit(f"{source}: table {what} entry {item!r}: expected 'key = label'")
        pairs.append((key.strip(), label.strip()))
    return pairs


def parse_spec(spec: str, source: str) -> tuple[list[Path], list[tuple[str, str]], list[tuple[str, str]]]:
    """The JSON paths, rows and columns of a table declaration."""
    lines = [line.strip() for line in spec.strip().splitlines() if line.strip()]
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip()] = value
    if not lines or not {"rows", "columns"} <= set(fields) <= {"rows", "columns", "corner"}:
        raise SystemExit(
            f"{source}: a table declaration needs a JSON path, then 'rows:' and 'columns:' lines (and optionally "
            "'corner:', the first header)"
        )
    paths = [Path(part.strip()) for part in lines[0].split(",") if part.strip()]
    corner = fields.get("corner", "run").strip()
    return paths, _pairs(fields["rows"], "rows", source), _pairs(fields["columns"], "columns", source), corner


#: The rows a run's own ``metrics.json`` offers as a table source.
RUN_ROWS = ("untrained", "test", "best")


def as_configs(data: dict, path: Path, source: str) -> dict:
    """The rows of a JSON source: a compare_seeds result's configs, or a run's ``metrics.json`` whose
    ``untrained``, ``test`` and ``best`` metrics become rows of one run each."""
    if "configs" in data:
        return data["configs"]
    if "test" not in data:
        raise SystemExit(f"{source}: {path} is neither a compare_seeds result nor a run's metrics.json")
    rows = {}
    for key in RUN_ROWS:
        metrics = data.get(key) or {}
        metrics = metrics.get("metrics", {}) if key == "best" else metrics
        summary = {name: {"mean": value, "std": None} for name, value in metrics.items()}
        rows[key] = {"completed": 1, "summary": summary, "train_time_s": [data.get("train_time_s")]}
    return rows


def _number(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def cell(entry: dict, key: str) -> str:
    """One cell of a config's row: see the module docstring for the keys."""
    if key == "seeds":
        return str(entry["completed"])
    if key == "time":
        times = [t for t in entry["train_time_s"] if t is not None]
        return f"{statistics.fmean(times):.0f} s" if times else "n/a"
    if key.startswith("method/"):  # a per-epoch method value summed over each run, then averaged
        values = [sums[key] for sums in entry.get("method_sums", {}).values() if sums and key in sums]
        if not values:
            return "—"
        return f"{statistics.fmean(values):.0f} s" if key.endswith("_s") else _number(statistics.fmean(values))
    if key.startswith("train/"):
        values = [logs[key] for logs in entry.get("last_train_logs", {}).values() if logs and key in logs]
        return _number(statistics.fmean(values)) if values else "—"
    stats = entry["summary"].get(key)
    if stats is None:
        return "n/a"
    return f"{stats['mean']:.3f}" + (f" ± {stats['std']:.3f}" if stats["std"] is not None else "")


def render(
    results: dict, rows: list[tuple[str, str]], columns: list[tuple[str, str]], source: str, corner: str = "run"
) -> str:
    """The Markdown table of ``rows`` × ``columns`` of a compare_seeds result."""
    lines = [f"| {corner} | " + " | ".join(h for _, h in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row, label in rows:
        row, _, stem = row.partition("@")
        config, _, part = row.partition(":")
        entry = find_row(results, config, stem, source)
        if part == "untrained":  # the untrained model of that config's runs
            entry = {**entry, "summary": entry.get("untrained_summary") or {}, "train_time_s": [None]}
        elif part:
            raise SystemExit(f"{source}: table row {row!r}: expected CONFIG or CONFIG:untrained")
        lines.append(f"| {label} | " + " | ".join(cell(entry, key) for key, _ in columns) + " |")
    return "\n".join(lines) + "\n"


def find_row(results: dict, config: str, stem: str, source: str) -> dict:
    """The entry of ``config`` in the JSON file ``stem`` (any, when empty) of a table's sources.

    ``results`` is ``{"configs": {...}}`` (one source) or ``{"sources": {stem: configs}}`` (several).
    """
    sources = results.get("sources") or {"": results["configs"]}
    if stem:
        if stem not in sources:
            raise SystemExit(f"{source}: table row {config}@{stem}: no JSON file {stem}.json among its sources")
        sources = {stem: sources[stem]}
    found = [name for name, configs in sources.items() if config in configs]
    if not found:
        raise SystemExit(f"{source}: table row {config!r} is not in its JSON")
    if len(found) > 1:
        raise SystemExit(
            f"{source}: table row {config!r} is in more than one of its JSON files "
            f"({', '.join(found)}); name one as {config}@STEM"
        )
    return sources[found[0]][config]


def read_json(path: Path, source: str) -> dict:
    """The JSON file ``path`` (relative to the repository), or an error naming it and the document."""
    try:
        return json.loads((ROOT / path).read_text())
    except ValueError as err:
        raise SystemExit(f"{source}: {path} is not valid JSON ({err}); was its benchmark interrupted?") from None


def lookup(data: object, key: str, source: str, path: Path) -> object:
    """``data[a][b]...`` for ``key = "a.b..."``; a list index is a number (``ratio_range.0``)."""
    node = data
    for part in key.split("."):
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]  # type: ignore[index]
        except (KeyError, IndexError, ValueError, TypeError):
            raise SystemExit(f"{source}: value {key!r} is not in {path}") from None
    return node


def value_text(match: re.Match, source: str) -> str:
    """One inline value: the JSON entry at ``key``, through the format (Python's, e.g. ``.3f``; default: as is)."""
    path = Path(match["path"])
    if not (ROOT / path).is_file():
        raise SystemExit(f"{source}: the JSON of a value, {path}, does not exist")
    found = lookup(read_json(path, source), match["key"], source, path)
    return format(found, match["fmt"]) if match["fmt"] else str(found)


def rendered(text: str, source: str) -> str:
    """``text`` with every declared table and inline value rendered from its JSON."""

    def one(match: re.Match) -> str:
        paths, rows, columns, corner = parse_spec(match["spec"], source)
        results: dict = {"sources": {}}
        for path in paths:
            if not (ROOT / path).is_file():
                raise SystemExit(f"{source}: the JSON of a table, {path}, does not exist")
            if path.stem in results["sources"]:
                raise SystemExit(f"{source}: two of a table's JSON files are named {path.stem}.json")
            results["sources"][path.stem] = as_configs(read_json(path, source), path, source)
        return match.group(1) + render(results, rows, columns, source, corner) + match.group(4)

    text = BLOCK.sub(one, text)
    return VALUE.sub(lambda m: m.group(1) + value_text(m, source) + m.group(6), text)


RESULT_CELL = re.compile(r"^\**\d[\d,]*\.\d")


def marked_typed(before: str) -> bool:
    """Whether the text just before a table (blank lines aside) is a ``<!-- typed: REASON -->`` comment."""
    before = before.rstrip()
    comment = before[before.rfind("<!--") :] if before.endswith("-->") else ""
    return comment.startswith("<!-- typed: ") and len(comment) > len("<!-- typed:  -->")


def undeclared_tables(text: str) -> list[int]:
    """The first line numbers of result tables neither rendered from JSON nor marked ``<!-- typed: ... -->``."""
    lines = text.splitlines()
    inside = set()
    for match in BLOCK.finditer(text):
        first = text.count("\n", 0, match.start("table"))
        inside.update(range(first, first + match["table"].count("\n")))
    found, start = [], None
    for number, line in enumerate([*lines, ""]):
        if line.startswith("|") and start is None:
            start = number
        elif not line.startswith("|") and start is not None:
            cells = [c.strip() for row in lines[start:number] for c in row.strip("|").split("|")]
            typed = marked_typed("\n".join(lines[max(0, start - 20) : start]))
            if start not in inside and not typed and any(RESULT_CELL.match(c) for c in cells):
                found.append(start + 1)
            start = None
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--check", action="store_true", help="only compare; exit 1 if a table is out of date")
    args = p.parse_args(argv)
    stale, undeclared = [], []
    for path in args.files:
        text = path.read_text()
        new = rendered(text, str(path))
        if new != text:
            stale.append(str(path))
            if not args.check:
                path.write_text(new)
        for line in undeclared_tables(new):
            print(
                f"{path}:{line}: a results table neither rendered from JSON (<!-- table: ... -->) nor marked "
                "<!-- typed: REASON -->",
                file=sys.stderr,
            )
            undeclared.append(f"{path}:{line}")
    if args.check and stale:
        names = ", ".join(stale)
        print(f"tables out of date with their JSON: {names} (run benchmarks/docs_tables.py)", file=sys.stderr)
    return 1 if undeclared or (args.check and stale) else 0


if __name__ == "__main__":
    raise SystemExit(main())
