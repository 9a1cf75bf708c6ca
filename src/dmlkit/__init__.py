"""dmlkit: deep metric learning with zero-shot retrieval evaluation.

The Python API (:mod:`dmlkit.api`), importable from here: :func:`train`, :func:`load_run` (then
``.evaluate()``, ``.embed(...)``), :func:`load_config`, :func:`check_config` and
:func:`evaluate_embeddings`. They are loaded on first use, so that ``import dmlkit.errors`` and
the like stay light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = (
    "Embeddings",
    "RestoredRun",
    "TrainResult",
    "check_config",
    "evaluate_embeddings",
    "load_config",
    "load_run",
    "train",
)

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module("dmlkit.api"), name)
    raise AttributeError(f"module 'dmlkit' has no attribute {name!r}")
