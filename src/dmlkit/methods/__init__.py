"""Training methods: the baseline metric-loss method and the seed methods.

Importing this package registers every method in :data:`METHODS`.
"""

from dmlkit.methods import dvml, intra_batch, magnet, metric_loss, pl_manifold, pseudo_label  # noqa: F401  (registers the methods)
from dmlkit.methods.base import Method, MethodContext, StepOutput, TrainStep
from dmlkit.methods.registry import METHODS

__all__ = ["METHODS", "Method", "MethodContext", "StepOutput", "TrainStep"]
