"""Runs grouped by setting (runs that differ only in their seed form one group), with mean ± std."""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass
from typing import Any

from dmlkit.report.records import PER_RUN_KEYS, RunRecord


@dataclass(frozen=True)
class Stat:
    """A metric over a group's completed runs: the mean, the sample standard deviation (``None`` for one
    run) and the number of runs it is over."""

    mean: float
    std: float | None
    n: int

    def format(self, digits: int = 3) -> str:
        return f"{self.mean:.{digits}f}" + ("" if self.std is None else f" ± {self.std:.{digits}f}")


def stat(values: list[float]) -> Stat | None:
    """:class:`Stat` of the finite ``values``; ``None`` if there is none.

    Example:
        >>> stat([0.5, 0.7]).format()
        '0.600 ± 0.141'
    """
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None
    return Stat(statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else None, len(finite))


@dataclass
class Group:
    """The runs of one setting.

    Attributes:
        label: Its runs' common name (the run directories' name without the seed tag), or what sets it
            apart when several groups share a name.
        runs: Its runs, by seed.
        differs: The config keys in which it differs from the report's other groups.
    """

    label: str
    runs: list[RunRecord]
    differs: str = ""

    @property
    def completed(self) -> list[RunRecord]:
        """The runs whose final test metrics exist (``status: completed``); only these are averaged."""
        return [r for r in self.runs if r.status == "completed" and r.test]

    @property
    def flagged(self) -> list[RunRecord]:
        """Runs left out of the averages (failed, interrupted, still running), to be shown as such."""
        done = set(map(id, self.completed))
        return [r for r in self.runs if id(r) not in done]

    @property
    def seeds(self) -> list[int]:
        return sorted(r.seed for r in self.completed)

    def metric(self, name: str) -> Stat | None:
        return stat([r.test[name] for r in self.completed if name in r.test])

    @property
    def paper(self) -> dict[str, Any] | None:
        """The published row the group's config names (``paper: {row, metrics}``), if any."""
        return self.runs[0].paper


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``a.b.c`` keys (lists and scalars are leaves).

    Example:
        >>> flatten({"loss": {"name": "triplet", "margin": 0.2}, "seed": 1})
        {'loss.name': 'triplet', 'loss.margin': 0.2, 'seed': 1}
    """
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(
            flatten(value, f"{prefix}{key}.") if isinstance(value, dict) and value else {f"{prefix}{key}": value}
        )
    return out


#: At most this many differing keys name a setting; the rest are counted.
MAX_DIFFERENCES = 6


def _nested(key: str, other: str) -> bool:
    """Whether one of the two flattened keys lies under the other (``loss`` and ``loss.margin``)."""
    return key.startswith(f"{other}.") or other.startswith(f"{key}.")


def differences(settings: list[dict[str, Any]], limit: int = MAX_DIFFERENCES) -> list[str]:
    """For each setting, the config keys whose values differ between the settings (``key=value; ...``; a
    key the setting does not set reads ``(not set)``, unless the setting sets a key above or below it, as
    ``loss=None`` beside ``loss.margin``), the first ``limit`` of them and then how many more."""
    flat = [flatten({k: v for k, v in s.items() if k not in PER_RUN_KEYS and k != "paper"}) for s in settings]
    keys = sorted(set().union(*flat)) if flat else []
    differing = [k for k in keys if len({repr(f.get(k, "(not set)")) for f in flat}) > 1]
    out = []
    for f in flat:
        shown = [k for k in differing if k in f or not any(_nested(k, other) for other in f)]
        parts = [f"{k}={f.get(k, '(not set)')}" for k in shown[:limit]]
        if len(shown) > limit:
            parts.append(f"… {len(shown) - limit} more")
        out.append("; ".join(parts))
    return out


def _common_name(runs: list[RunRecord]) -> str:
    """The run directories' name with a trailing seed tag (``-s0``, ``_seed1``) removed."""
    stems = {re.sub(r"[-_](s|seed)\d+$", "", r.name) for r in runs}
    return stems.pop() if len(stems) == 1 else runs[0].name


def group_runs(runs: list[RunRecord]) -> list[Group]:
    """Group ``runs`` by setting (their configs without the seed, the name and the output folder), in the
    order their first run was given; each labelled by its runs' name, with what differs from the others."""
    by_setting: dict[str, list[RunRecord]] = {}
    for run in runs:
        by_setting.setdefault(run.setting(), []).append(run)
    members = [sorted(rs, key=lambda r: (r.seed, r.name)) for rs in by_setting.values()]
    diffs = differences([rs[0].config for rs in members])
    names = [_common_name(rs) for rs in members]
    labels = [name if names.count(name) == 1 else (diff or name) for name, diff in zip(names, diffs, strict=True)]
    return [Group(label, rs, diff) for label, rs, diff in zip(labels, members, diffs, strict=True)]


def metric_names(groups: list[Group]) -> list[str]:
    """The test metrics of the groups' completed runs, Recall@K by K first, then the others in order."""
    seen: dict[str, None] = {}
    for group in groups:
        for run in group.completed:
            seen.update(dict.fromkeys(run.test))
    recall = sorted((m for m in seen if m.startswith("recall@")), key=lambda m: int(m.split("@")[1]))
    return recall + [m for m in seen if not m.startswith("recall@")]


#: Column headers of the common metrics.
HEADERS = {"nmi": "NMI", "f1": "F1", "map@r": "MAP@R", "r_precision": "R-prec."}


def header(metric: str) -> str:
    """A metric's column header: ``recall@4`` -> ``R@4``, ``map@r`` -> ``MAP@R``; others as named.

    Example:
        >>> [header(m) for m in ("recall@1", "nmi", "accuracy")]
        ['R@1', 'NMI', 'accuracy']
    """
    if metric.startswith("recall@"):
        return "R@" + metric[len("recall@") :]
    return HEADERS.get(metric, metric)


def best_per_metric(groups: list[Group], names: list[str]) -> dict[str, int]:
    """For each metric, the index of the group with the highest mean (ties: the first)."""
    best: dict[str, int] = {}
    for name in names:
        means = [(g.metric(name).mean if g.metric(name) else -math.inf) for g in groups]
        if any(m > -math.inf for m in means):
            best[name] = max(range(len(means)), key=lambda i: (means[i], -i))
    return best
