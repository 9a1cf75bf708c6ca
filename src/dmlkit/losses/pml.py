"""Adapter from pytorch-metric-learning (PML) losses and miners to the dmlkit loss contract.

PML's distance objects L2-normalise embeddings by default; dmlkit makes this explicit:
every adapter states ``normalize`` and builds its distance with it.
"""

from __future__ import annotations

import torch
from pytorch_metric_learning.distances import BaseDistance, CosineSimilarity, LpDistance

from dmlkit.losses.base import MetricLoss


def lp_distance(normalize: bool = True, squared: bool = False) -> BaseDistance:
    """Euclidean distance (squared if asked) on optionally L2-normalised embeddings."""
    return LpDistance(normalize_embeddings=normalize, p=2, power=2 if squared else 1)


def cosine() -> BaseDistance:
    return CosineSimilarity()


class PMLLoss(MetricLoss):
    """A PML loss, optionally preceded by a PML miner, computed in fp32.

    The loss runs with autocast disabled on fp32 embeddings, so that proxies and
    learnable margins stay fp32 and the exponentials of MS/Proxy-Anchor do not overflow
    in half precision.

    Args:
        loss: A ``pytorch_metric_learning.losses`` module.
        miner: A ``pytorch_metric_learning.miners`` module, or ``None`` (all pairs/triplets).
        lr_multiplier: LR factor for the loss's own parameters.
        normalize_input: L2-normalise embeddings before PML sees them (for PML losses that
            normalise only some of their operands).
    """

    def __init__(
        self,
        loss: torch.nn.Module,
        miner: torch.nn.Module | None = None,
        lr_multiplier: float = 1.0,
        normalize_input: bool = False,
    ) -> None:
        super().__init__()
        self.loss = loss.float()
        self.miner = miner
        self.lr_multiplier = lr_multiplier
        self.normalize_input = normalize_input

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            embeddings = embeddings.float()
            ref_emb = ref_emb.float() if ref_emb is not None else None
            if self.normalize_input:
                embeddings = torch.nn.functional.normalize(embeddings, dim=1)
                ref_emb = torch.nn.functional.normalize(ref_emb, dim=1) if ref_emb is not None else None
            indices = self.miner(embeddings, labels, ref_emb, ref_labels) if self.miner is not None else None
            return self.loss(embeddings, labels, indices, ref_emb, ref_labels)
