"""``dmlkit report``: one self-contained HTML page (figures embedded) for one run or a comparison of
several, and the comparison's table as Markdown.

A single run shows its status, the untrained / best / final metrics, its learning curves, its figures
(the retrieval grid and the method's own) and its config and environment. Several runs are grouped by
setting (runs differing only in their seed form one row) into a table of mean ± sample standard deviation
over the completed runs, with the number of seeds, the best mean of each column in bold, the published row
beside any config that names one (``paper``), overlaid curves, and each run's page folded below. Runs that
did not complete are listed as such and left out of the means.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dmlkit.files import atomic_write_text
from dmlkit.report.figures import file_uri, group_curves, run_curves
from dmlkit.report.groups import Group, best_per_metric, group_runs, header, metric_names
from dmlkit.report.records import RunRecord, find_runs

#: Environment facts shown for a run (``env.json`` keys).
ENV_KEYS = ("device", "device_name", "world_size", "precision", "torch_threads", "python", "git_commit", "git_dirty")


@dataclass
class Cell:
    """A table cell: the value, its standard deviation (the page sets it smaller) and whether it is the
    column's best."""

    value: str
    sd: str = ""
    best: bool = False

    @property
    def text(self) -> str:
        return self.value + (f" ± {self.sd}" if self.sd else "")


def _cells(group: Group, names: list[str], best: dict[str, int], index: int) -> list[Cell]:
    cells = []
    for name in names:
        s = group.metric(name)
        if s is None:
            cells.append(Cell("—"))
        else:
            cells.append(Cell(f"{s.mean:.3f}", "" if s.std is None else f"{s.std:.3f}", best.get(name) == index))
    return cells


def _paper_cells(paper: dict[str, Any], names: list[str]) -> list[Cell]:
    metrics = paper.get("metrics") or {}
    return [Cell(f"{metrics[n]:.3f}" if n in metrics else "") for n in names]


def comparison_rows(groups: list[Group], names: list[str]) -> list[dict[str, Any]]:
    """The rows of the comparison table: each group (and the paper's row after a group that names one)."""
    best = best_per_metric(groups, names) if len(groups) > 1 else {}  # one setting: nothing to compare
    rows = []
    for i, group in enumerate(groups):
        flagged = [f"{r.name}: {r.status}" for r in group.flagged]
        rows.append(
            {
                "label": group.label,
                "differs": group.differs if group.differs != group.label else "",
                "cells": _cells(group, names, best, i),
                "seeds": len(group.completed),
                "seed_list": ", ".join(map(str, group.seeds)),
                "flagged": flagged,
                "paper": False,
            }
        )
        if group.paper:
            rows.append(
                {
                    "label": f"paper: {group.paper['row']}",
                    "differs": "",
                    "cells": _paper_cells(group.paper, names),
                    "seeds": "",
                    "seed_list": "",
                    "flagged": [],
                    "paper": True,
                }
            )
    return rows


def _metric_rows(run: RunRecord, names: list[str]) -> list[dict[str, Any]]:
    m = run.metrics
    rows = []
    if m.get("untrained"):
        rows.append(("untrained", m["untrained"]))
    if m.get("best"):
        rows.append((f"best (epoch {m['best'].get('epoch')})", m["best"].get("metrics") or {}))
    if m.get("test"):
        rows.append((f"final (epoch {m.get('test_epoch') or m.get('epochs_completed')})", m["test"]))
    return [{"label": label, "cells": [_format(values.get(n)) for n in names]} for label, values in rows]


def _format(value: Any) -> str:
    return "—" if value is None else f"{float(value):.3f}"


def _run_context(run: RunRecord) -> dict[str, Any]:
    names = metric_names([Group(run.name, [run])]) or sorted(run.metrics.get("untrained") or {})
    figures = [(name, file_uri(path)) for name, path in run.figures.items()]
    return {
        "name": run.name,
        "path": str(run.path),
        "status": run.status,
        "error": run.metrics.get("error"),
        "train_time": run.metrics.get("train_time_s"),
        "metric_names": names,
        "headers": [header(n) for n in names],
        "metric_rows": _metric_rows(run, names),
        "curves": run_curves(run, names),
        "figures": figures,
        "config_yaml": yaml.safe_dump(run.config, sort_keys=False, default_flow_style=None),
        "env": [(k, run.env[k]) for k in ENV_KEYS if k in run.env],
        "versions": run.env.get("versions") or {},
        "summary": run.summary,
    }


def _version() -> str:
    try:
        return importlib.metadata.version("dmlkit")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _environment():
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("dmlkit.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["zip"] = zip
    return env


def render_html(runs: list[RunRecord], title: str | None = None) -> str:
    """The report page of ``runs`` (one: a run report; several: a comparison)."""
    groups = group_runs(runs)
    names = metric_names(groups)
    best_metric = runs[0].config.get("eval", {}).get("best_metric", "recall@1")
    context = {
        "title": title or (f"dmlkit run {runs[0].name}" if len(runs) == 1 else f"dmlkit: {len(runs)} runs compared"),
        "generated": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "version": _version(),
        "comparison": len(runs) > 1,
        "metric_names": names,
        "headers": [header(n) for n in names],
        "rows": comparison_rows(groups, names),
        "group_curves": group_curves(groups, best_metric) if len(runs) > 1 else [],
        "runs": [_run_context(r) for r in runs],
    }
    return _environment().get_template("report.html.j2").render(**context)


def render_markdown(runs: list[RunRecord]) -> str:
    """The comparison table as Markdown (mean ± std over the completed seeds, the paper's rows beside)."""
    groups = group_runs(runs)
    names = metric_names(groups)
    lines = ["| run | " + " | ".join(header(n) for n in names) + " | seeds |", "|---" * (len(names) + 2) + "|"]
    for row in comparison_rows(groups, names):
        cells = [f"**{c.text}**" if c.best else c.text for c in row["cells"]]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + f" | {row['seeds']} |")
    return "\n".join(lines) + "\n"


def write_report(paths: list[str | Path], output: str | Path, title: str | None = None) -> Path:
    """Read the runs of ``paths`` (run directories, or folders of them) and write the HTML report."""
    runs = find_runs(list(paths))
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output, render_html(runs, title))
    return output
