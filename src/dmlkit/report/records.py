"""A run directory read back for a report: its config, environment, metrics, logged curves and figures."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dmlkit.config import config_from_dict, config_to_dict, read_yaml
from dmlkit.errors import DmlkitError

#: What makes a folder a run directory.
RUN_FILES = ("config.yaml", "metrics.json")
#: Config keys that differ between the seeds of one setting (never part of a group's identity).
PER_RUN_KEYS = ("seed", "name", "output_dir")


@dataclass
class RunRecord:
    """What a report shows of one run.

    Attributes:
        path: The run directory.
        config: The resolved config, as plain data, completed with the defaults of this version.
        env: ``env.json`` (versions, device, command), or empty.
        summary: ``summary.json`` (the data found, the model, the method), or empty.
        metrics: ``metrics.json``: ``status``, ``test``, ``best``, ``untrained``, ``history``.
        curves: Logged scalars by name, each a list of (step, value), from ``logs/csv/metrics.csv``.
        figures: The run's PNG figures (``plots/*.png``), by file name.
    """

    path: Path
    config: dict[str, Any]
    env: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def status(self) -> str:
        return str(self.metrics.get("status", "unknown"))

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def test(self) -> dict[str, float]:
        """The final test metrics (empty until the run has them)."""
        return dict(self.metrics.get("test") or {})

    @property
    def paper(self) -> dict[str, Any] | None:
        return self.config.get("paper")

    def setting(self) -> str:
        """The config without what differs between seeds, as canonical JSON (a group's identity)."""
        return json.dumps({k: v for k, v in self.config.items() if k not in PER_RUN_KEYS}, sort_keys=True)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DmlkitError(f"{path}: not readable as JSON ({exc}); the run directory is damaged") from exc
    if not isinstance(data, dict):
        raise DmlkitError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_curves(path: Path) -> dict[str, list[tuple[int, float]]]:
    """Every numeric column of a Lightning CSV log by name, as (step, value) pairs (empty cells skipped)."""
    curves: dict[str, list[tuple[int, float]]] = {}
    if not path.exists():
        return curves
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            try:
                step = int(float(row.get("step") or "nan"))
            except ValueError:
                continue
            for key, text in row.items():
                if key in ("step", "epoch") or not text:
                    continue
                try:
                    value = float(text)
                except ValueError:
                    continue
                if math.isfinite(value):
                    curves.setdefault(key, []).append((step, value))
    return curves


def read_run(path: str | Path) -> RunRecord:
    """Read the run directory ``path``.

    Raises:
        DmlkitError: ``path`` is not a run directory (it lacks ``config.yaml`` or ``metrics.json``), or a
            file of it is damaged; the message names the file.
    """
    path = Path(path)
    missing = [name for name in RUN_FILES if not (path / name).is_file()]
    if missing:
        raise DmlkitError(
            f"{path}: not a dmlkit run directory (no {' or '.join(missing)}); give the folder `dmlkit train` "
            "wrote (RUN_DIR), or a folder of such run directories"
        )
    try:
        config = config_to_dict(config_from_dict(read_yaml(path / "config.yaml")))
    except DmlkitError as exc:
        raise DmlkitError(f"{path / 'config.yaml'}: {exc}") from exc
    figures = {p.name: p for p in sorted((path / "plots").glob("*.png"))}
    return RunRecord(
        path=path,
        config=config,
        env=_read_json(path / "env.json"),
        summary=_read_json(path / "summary.json"),
        metrics=_read_json(path / "metrics.json"),
        curves=read_curves(path / "logs" / "csv" / "metrics.csv"),
        figures=figures,
    )


def find_runs(paths: list[str | Path]) -> list[RunRecord]:
    """The runs of ``paths``: each a run directory, or a folder whose sub-folders are (one level down).

    Raises:
        DmlkitError: A path that does not exist, or is neither a run nor holds one.
    """
    runs: list[RunRecord] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise DmlkitError(f"{path}: no such run directory")
        if all((path / name).is_file() for name in RUN_FILES):
            runs.append(read_run(path))
            continue
        inner = [p for p in sorted(path.iterdir()) if p.is_dir() and all((p / n).is_file() for n in RUN_FILES)]
        if not inner:
            read_run(path)  # raises, naming what is missing
        runs.extend(read_run(p) for p in inner)
    return runs
