"""Run assembly: from a config, everything a run needs, derived and built in one place.

* :func:`check_config` — the dry build that checks every section by value before anything is
  created, and resolves what the config leaves to be derived (:mod:`.check`).
* :func:`assemble` — a training run's data, model, method, batches, optimiser and evaluator (:mod:`.run`).
* :func:`restore_run` — a trained run rebuilt from its checkpoint for ``eval``/``embed`` (:mod:`.restore`).

The trainer (:mod:`dmlkit.training.trainer`), ``dmlkit eval``/``embed`` and the Python API
(:mod:`dmlkit.api`) all go through here, so a run is built the same way wherever it is used.
"""

from dmlkit.assembly.check import check_config
from dmlkit.assembly.components import build_method, build_model
from dmlkit.assembly.devices import build_fabric, check_trainer
from dmlkit.assembly.embedding import FabricEmbedder
from dmlkit.assembly.restore import Embeddings, RestoredRun, resolve_checkpoint, restore_run
from dmlkit.assembly.run import RunAssembly, assemble

__all__ = [
    "Embeddings",
    "FabricEmbedder",
    "RestoredRun",
    "RunAssembly",
    "assemble",
    "build_fabric",
    "build_method",
    "build_model",
    "check_config",
    "check_trainer",
    "resolve_checkpoint",
    "restore_run",
]
