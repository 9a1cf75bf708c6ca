"""The loss contract every dmlkit metric loss follows.

A loss is an ``nn.Module`` called as ``loss(embeddings, labels, ref_emb=None,
ref_labels=None)`` and returning a scalar tensor. ``ref_emb``/``ref_labels``
are an optional reference set (cross-batch memory, embeddings gathered from other
GPUs, query-vs-reference losses); when omitted the batch is its own reference.
Losses with learnable parameters (proxies) keep them in fp32 and report an LR
multiplier through :attr:`MetricLoss.lr_mult`.
"""

from __future__ import annotations

import torch
from torch import nn


class MetricLoss(nn.Module):
    """Base class of dmlkit losses.

    Attributes:
        lr_mult: Factor applied to the base learning rate for this loss's own parameters
            (proxies, learnable margins); the losses that have such parameters take it as their
            ``lr_mult`` argument (config key ``loss.lr_mult``).
    """

    lr_mult: float = 1.0

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
