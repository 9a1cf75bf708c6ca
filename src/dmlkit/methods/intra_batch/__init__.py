"""Intra-batch connections (Seidenschwarz et al., ICML 2021): a message passing network over the batch."""

from dmlkit.methods.intra_batch.method import IntraBatchMethod
from dmlkit.methods.intra_batch.mpn import (
    BatchAttention,
    MessagePassingLayer,
    MessagePassingNetwork,
    extra_zero_softmax,
    smoothed_cross_entropy,
)

__all__ = [
    "BatchAttention",
    "IntraBatchMethod",
    "MessagePassingLayer",
    "MessagePassingNetwork",
    "extra_zero_softmax",
    "smoothed_cross_entropy",
]
