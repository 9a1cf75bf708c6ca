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

The first line may name several JSON files, separated by commas, whose configs are merged (a config
in two of them is an error): a table can set runs of two benchmarks side by side. A JSON file may also be
a run's own ``metrics.json`` (copied into ``benchmarks/results/``), whose rows are ``untrained``, ``test``
(the final model) and ``best``. An optional ``corner:`` line sets the first header (default ``run``).

A figure quoted in the text is declared inline, ``<!-- value: PATH KEY FORMAT -->0.939<!-- /value -->``:
the entry ``KEY`` (dotted; list items by index) of the JSON at ``PATH``, formatted with Python's format
spec ``FORMAT`` (optional, e.g. ``.3f``).

A row ``CONFIG:untrained`` shows the untrained model of that config's runs (``untrained_summary``).
A column key is a test metric (mean ± sample std over the seeds), a ``train/*`` value (the mean over
the seeds of each run's last logged value), ``time`` (mean training time) or ``seeds`` (completed runs).

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
        config, _, part = row.partition(":")
        if config not in results["configs"]:
            raise SystemExit(f"{source}: table row {config!r} is not in its JSON")
        entry = results["configs"][config]
        if part == "untrained":  # the untrained model of that config's runs
            entry = {**entry, "summary": entry.get("untrained_summary") or {}, "train_time_s": [None]}
        elif part:
            raise SystemExit(f"{source}: table row {row!r}: expected CONFIG or CONFIG:untrained")
        lines.append(f"| {label} | " + " | ".join(cell(entry, key) for key, _ in columns) + " |")
    return "\n".join(lines) + "\n"


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
    found = lookup(json.loads((ROOT / path).read_text()), match["key"], source, path)
    return format(found, match["fmt"]) if match["fmt"] else str(found)


def rendered(text: str, source: str) -> str:
    """``text`` with every declared table and inline value rendered from its JSON."""

    def one(match: re.Match) -> str:
        paths, rows, columns, corner = parse_spec(match["spec"], source)
        results: dict = {"configs": {}}
        for path in paths:
            if not (ROOT / path).is_file():
                raise SystemExit(f"{source}: the JSON of a table, {path}, does not exist")
            configs = as_configs(json.loads((ROOT / path).read_text()), path, source)
            twice = sorted(set(configs) & set(results["configs"]))
            if twice:
                raise SystemExit(f"{source}: table row(s) {', '.join(twice)} are in more than one of its JSON files")
            results["configs"].update(configs)
        return match.group(1) + render(results, rows, columns, source, corner) + match.group(4)

    text = BLOCK.sub(one, text)
    return VALUE.sub(lambda m: m.group(1) + value_text(m, source) + m.group(6), text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--check", action="store_true", help="only compare; exit 1 if a table is out of date")
    args = p.parse_args(argv)
    stale = []
    for path in args.files:
        text = path.read_text()
        new = rendered(text, str(path))
        if new != text:
            stale.append(str(path))
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        names = ", ".join(stale)
        print(f"tables out of date with their JSON: {names} (run benchmarks/docs_tables.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
