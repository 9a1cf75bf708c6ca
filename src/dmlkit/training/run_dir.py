"""The run directory: everything a run leaves behind, as data.

Layout::

    RUN_DIR/config.yaml          resolved configuration
    RUN_DIR/env.json             versions, device, seed, command line
    RUN_DIR/metrics.json         {"status", "test", "best", "untrained", "history", ...}
    RUN_DIR/checkpoints/last.pt  latest state (resume from here)
    RUN_DIR/checkpoints/best.pt  state with the best ``eval.best_metric``
    RUN_DIR/logs/                CSV and TensorBoard logs
    RUN_DIR/plots/               the method's figures

A directory is created only once the run is assembled (a config or data error leaves none), and
a new run never takes a directory that holds another (:func:`new_run_dir`).
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
from dmlkit.files import atomic_write_json, atomic_write_text

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

    def create(self) -> None:
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)

    def write_config(self, text: str) -> None:
        atomic_write_text(self.config, text)

    def write_metrics(self, data: dict[str, Any]) -> None:
        atomic_write_json(self.metrics, data)

    def read_metrics(self) -> dict[str, Any]:
        return json.loads(self.metrics.read_text()) if self.metrics.is_file() else {}

    def write_env(self, data: dict[str, Any]) -> None:
        atomic_write_json(self.env, data)


#: Keys that may differ between a run's saved config and the config it is resumed with.
RESUMABLE_CHANGES = ("trainer.epochs", "trainer.progress_bar", "trainer.threads", "data.num_workers")


def check_run_dir(run: RunDir, cfg: RunConfig, resume: bool) -> None:
    """A new run needs a directory without a run in it; a resumed one, its checkpoint and the same config
    (resolved, as ``config.yaml`` records it) up to :data:`RESUMABLE_CHANGES`."""
    if not resume:
        if run.last.exists():
            raise DmlkitError(
                f"run directory {run.path} already holds a run ({run.last} exists): resume it (--resume) "
                "or choose another directory"
            )
        return
    if not run.last.is_file():
        raise DmlkitError(f"--resume: no checkpoint to resume at {run.last}")
    saved = config_to_dict(config_from_dict(read_yaml(run.config)))
    bad = [k for k in changed_keys(saved, config_to_dict(cfg)) if k not in RESUMABLE_CHANGES]
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
