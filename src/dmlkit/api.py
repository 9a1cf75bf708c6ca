"""The Python API: train from a config, restore a run, embed and evaluate — what the command line calls.

Example (the README runs this block in its tests)::

    import dmlkit

    result = dmlkit.train("configs/quickstart.yaml", ["trainer.epochs=2"], run_dir="runs/api")
    run = dmlkit.load_run(result.run_dir)          # = dmlkit eval / embed
    metrics = run.evaluate()                        # = result.metrics["test"]
    embeddings = run.embed(run.dataset("test"))     # .embeddings, .labels, .paths, .class_names
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmlkit.assembly import Embeddings, RestoredRun, check_config, restore_run
from dmlkit.config import RunConfig, apply_overrides, config_from_dict, config_to_dict, load_config
from dmlkit.errors import DmlkitError
from dmlkit.evaluation import evaluate_embeddings
from dmlkit.training.run_dir import new_run_dir, run_to_resume
from dmlkit.training.trainer import Trainer

#: Set by the first process of a run to its run directory; the processes Lightning launches for
#: ``trainer.devices > 1`` re-run the same program and take that directory instead of choosing their own.
RUN_DIR_ENV = "DMLKIT_RUN_DIR"


@dataclass(frozen=True)
class TrainResult:
    """A finished training run.

    Attributes:
        run_dir: Its run directory.
        metrics: ``metrics.json``'s content (``test``: the final model's metrics).
        is_global_zero: Whether this is the first process (where a summary is printed).
    """

    run_dir: Path
    metrics: dict[str, Any]
    is_global_zero: bool = True

    def load(self, checkpoint: str = "last", device: str = "cpu") -> RestoredRun:
        """The trained run, restored (see :func:`load_run`)."""
        return load_run(self.run_dir, checkpoint, device)


def as_config(config: str | Path | Mapping[str, Any] | RunConfig | None, overrides: Sequence[str] = ()) -> RunConfig:
    """A config from a YAML path (with its bases), a plain mapping or a :class:`RunConfig`, with
    ``--set``-style overrides applied (types checked; values by :func:`~dmlkit.assembly.check_config`)."""
    if config is None or isinstance(config, (str, Path)):
        return load_config(config, overrides)
    data = config_to_dict(config) if isinstance(config, RunConfig) else dict(config)
    data.setdefault("method", dict(RunConfig().method))
    return config_from_dict(apply_overrides(data, overrides))


def train(
    config: str | Path | Mapping[str, Any] | RunConfig,
    overrides: Sequence[str] = (),
    run_dir: str | Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train a run (``dmlkit train``).

    Args:
        config: A YAML path, a mapping or a :class:`RunConfig`.
        overrides: ``key.sub=value`` overrides, as ``--set``.
        run_dir: The run directory; default ``OUTPUT_DIR/NAME`` (``NAME``: ``name``, else the config
            file's stem, else ``run``), with ``-1``, ``-2``, ... when taken.
        resume: Continue the run in ``run_dir`` from its last checkpoint; without ``run_dir``, the most
            recently written run of ``NAME`` that has not completed.

    Raises:
        ConfigError: An invalid key or value (before anything is created).
        DmlkitError: A run directory that holds another run, data that cannot be read, ...
    """
    cfg = as_config(config, overrides)
    launched = os.environ.get(RUN_DIR_ENV)
    if launched:  # a process launched by the first one: it already chose the directory
        trainer = Trainer(cfg, launched, resume=resume)
        return TrainResult(Path(launched), trainer.fit(), trainer.fabric.is_global_zero)
    external = [f"{v}={os.environ[v]}" for v in ("WORLD_SIZE", "SLURM_NTASKS") if int(os.environ.get(v, "1")) > 1]
    if run_dir is None and external:
        raise DmlkitError(
            "--run-dir is required when the processes are started by an external launcher "
            f"({external[0]}: torchrun, srun), so that every process writes to the same run"
        )
    if run_dir is None:
        name = cfg.name or (Path(config).stem if isinstance(config, (str, Path)) else "run")
        run_dir = run_to_resume(cfg.output_dir, name) if resume else new_run_dir(cfg.output_dir, name)
        if resume:
            print(f"resuming {run_dir}", flush=True)
    os.environ[RUN_DIR_ENV] = str(run_dir)
    try:
        trainer = Trainer(cfg, run_dir, resume=resume)
        metrics = trainer.fit()
    finally:
        del os.environ[RUN_DIR_ENV]
    return TrainResult(Path(run_dir), metrics, trainer.fabric.is_global_zero)


def load_run(
    path: str | Path, checkpoint: str = "last", device: str = "cpu", precision: str | None = None
) -> RestoredRun:
    """A trained run restored from a run directory (``checkpoint``: ``last`` or ``best``) or a ``.pt``
    file, in eval mode on ``device`` (``dmlkit eval``/``embed``). See :class:`~dmlkit.assembly.RestoredRun`."""
    return restore_run(path, checkpoint, device, precision)


__all__ = [
    "RUN_DIR_ENV",
    "Embeddings",
    "RestoredRun",
    "TrainResult",
    "as_config",
    "check_config",
    "evaluate_embeddings",
    "load_config",
    "load_run",
    "train",
]
