"""The run directory: everything a run leaves behind, as data.

Layout::

    RUN_DIR/config.yaml          resolved configuration
    RUN_DIR/env.json             versions, device, seed, command line
    RUN_DIR/summary.json         the data found (sizes, classes), model, method, devices
    RUN_DIR/metrics.json         {"status", "test", "best", "untrained", "history", ...}
    RUN_DIR/checkpoints/last.pt  latest state (resume from here)
    RUN_DIR/checkpoints/best.pt  state with the best ``eval.best_metric``
    RUN_DIR/logs/                CSV and TensorBoard logs
    RUN_DIR/plots/               the method's figures

A directory is created only once the run is assembled (a config or data error leaves none); a
new run takes only an empty or new directory (:func:`check_run_dir`, :func:`new_run_dir`), and a
running one holds ``RUN_DIR/.lock`` (:mod:`dmlkit.training.run_lock`).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dmlkit.config import RunConfig, config_from_dict, config_to_dict, read_yaml
from dmlkit.errors import DmlkitError
from dmlkit.files import atomic_write_json, atomic_write_text, json_safe
from dmlkit.training.run_lock import LOCK_NAME

_PACKAGES = (
    "dmlkit",
    "torch",
    "torchvision",
    "timm",
    "lightning",
    "pytorch-metric-learning",
    "faiss-cpu",
    "faiss-gpu",
    "numpy",
    "scikit-learn",
)


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def env(self) -> Path:
        return self.path / "env.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    def remove_if_empty(self) -> None:
        """Remove the directory if nothing is in it (a run that stopped before writing anything)."""
        if self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()

    def create(self) -> None:
        """Create the folders, and remove temporary files a killed run left behind (call with the lock held)."""
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        for folder in (self.path, self.checkpoints, self.plots):
            if folder.is_dir():
                for stale in folder.glob(".*.tmp"):
                    stale.unlink(missing_ok=True)

    def write_config(self, text: str) -> None:
        atomic_write_text(self.config, text)

    def write_metrics(self, data: dict[str, Any]) -> None:
        """Write ``metrics.json``; a non-finite value is written as ``null`` and listed under ``non_finite``."""
        _, bad = json_safe(data)
        atomic_write_json(self.metrics, {**data, "non_finite": bad} if bad else data)

    def read_metrics(self) -> dict[str, Any]:
        return json.loads(self.metrics.read_text()) if self.metrics.is_file() else {}

    def write_env(self, data: dict[str, Any]) -> None:
        atomic_write_json(self.env, data)

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    def write_summary(self, data: dict[str, Any]) -> None:
        atomic_write_json(self.summary, data)


#: Keys that may differ between a run's saved config and the config it is resumed with.
RESUMABLE_CHANGES = ("trainer.epochs", "trainer.progress_bar", "trainer.threads", "data.num_workers", "data.cache")


#: What a dmlkit run directory holds (anything else marks a folder that is not one).
RUN_ENTRIES = frozenset({"config.yaml", "env.json", "metrics.json", "summary.json", "checkpoints", "logs", "plots"})


def unresumable_changes(saved: dict[str, Any], cfg: RunConfig) -> list[str]:
    """Dotted keys where ``cfg`` differs from a saved (resolved) config, beyond :data:`RESUMABLE_CHANGES`."""
    return [k for k in changed_keys(saved, config_to_dict(cfg)) if k not in RESUMABLE_CHANGES]


def check_run_dir(run: RunDir, cfg: RunConfig, resume: bool) -> None:
    """A new run needs an empty or new directory; a resumed one, its checkpoint and the same config
    (resolved, as ``config.yaml`` records it) up to :data:`RESUMABLE_CHANGES`."""
    if not resume:
        if run.last.exists():
            raise DmlkitError(
                f"run directory {run.path} already holds a run ({run.last} exists): resume it (--resume) "
                "or choose another directory"
            )
        entries = sorted(p.name for p in run.path.iterdir() if p.name != LOCK_NAME) if run.path.is_dir() else []
        if entries and set(entries) <= RUN_ENTRIES:
            status = run.read_metrics().get("status", "unknown")
            raise DmlkitError(
                f"run directory {run.path} holds the records of an earlier run (status {status!r}, no checkpoint); "
                "delete it or choose another directory"
            )
        if entries:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise DmlkitError(
                f"run directory {run.path} holds files that are not a dmlkit run ({shown}); choose an empty or "
                "new directory"
            )
        return
    if not run.last.is_file():
        raise DmlkitError(f"--resume: no checkpoint to resume at {run.last}")
    bad = unresumable_changes(config_to_dict(config_from_dict(read_yaml(run.config))), cfg)
    if bad:
        raise DmlkitError(
            f"--resume: the config differs from the one saved in {run.config} at {', '.join(bad)}; "
            f"only {', '.join(RESUMABLE_CHANGES)} may change when resuming"
        )


def new_run_dir(output_dir: str | Path, name: str) -> Path:
    """``OUTPUT_DIR/NAME``, or ``NAME-1``, ``NAME-2``, ... when taken: a new run never reuses a directory
    that holds files (an empty one is taken)."""
    base = Path(output_dir) / name
    candidate, n = base, 0
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def run_to_resume(output_dir: str | Path, name: str) -> Path:
    """The run of ``name`` that ``--resume`` without ``--run-dir`` continues: of ``OUTPUT_DIR/NAME``,
    ``NAME-1``, ... the most recently written one that holds a checkpoint and did not complete."""
    base = Path(output_dir) / name
    runs = [p for p in [base, *base.parent.glob(f"{base.name}-*")] if RunDir(p).last.is_file()]
    runs = [p for p in runs if p == base or p.name[len(base.name) + 1 :].isdigit()]
    unfinished = [p for p in runs if RunDir(p).read_metrics().get("status") != "completed"]
    if unfinished:
        return max(unfinished, key=lambda p: RunDir(p).last.stat().st_mtime)
    if runs:
        names = ", ".join(str(p) for p in sorted(runs))
        raise DmlkitError(
            f"--resume: every run of {name!r} has completed ({names}); pass --run-dir to continue one "
            "(with a larger trainer.epochs)"
        )
    raise DmlkitError(f"--resume: no run of {name!r} with a checkpoint under {base.parent}")


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two nested config mappings."""
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    """Output of a git command run in dmlkit's source folder, ``None`` outside a checkout."""
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _git_commit() -> str | None:
    return _git("rev-parse", "HEAD") or None


def _git_dirty() -> bool | None:
    """Whether tracked files differ from the commit (``None`` outside a checkout)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment_info(seed: int, device: torch.device, world_size: int, precision: str) -> dict[str, Any]:
    """Versions, hardware and invocation details recorded with every run."""
    cuda = torch.cuda.is_available()
    return {
        "seed": seed,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "world_size": world_size,
        "precision": precision,
        "cuda_available": cuda,
        "cuda_version": torch.version.cuda,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "versions": {name: _version(name) for name in _PACKAGES if _version(name)},
        "git_commit": _git_commit(),
        "git_dirty": _git_dirty(),
        "command": sys.argv,
    }
