"""Training methods: the baseline metric-loss method and the seed methods.

Importing this package registers every method in :data:`METHODS`. A new method is a folder (or
module) here with a :class:`Method` subclass registered by name, plus its import below.
"""

from dmlkit.methods import dvml, intra_batch, magnet, metric_loss, pl_manifold, pseudo_label  # noqa: F401  (registers the methods)
from dmlkit.methods.base import EmbedFn, Method, MethodRuntime, StepOutput, TrainStep
from dmlkit.methods.registry import METHODS

__all__ = ["METHODS", "EmbedFn", "Method", "MethodRuntime", "StepOutput", "TrainStep"]
