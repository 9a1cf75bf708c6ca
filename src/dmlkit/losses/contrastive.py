"""Contrastive loss (Hadsell, Chopra & LeCun 2006) with the squared hinge."""

from __future__ import annotations

import torch

from dmlkit.errors import ConfigError
from dmlkit.losses.base import MetricLoss
from dmlkit.losses.registry import LOSSES


def pair_masks(labels: torch.Tensor, ref_labels: torch.Tensor, self_ref: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean (n×m) masks of positive and negative pairs; the diagonal is excluded when ``self_ref``."""
    same = labels[:, None] == ref_labels[None, :]
    pos = same.clone()
    if self_ref:
        pos.fill_diagonal_(False)
    return pos, ~same


@LOSSES.register("contrastive")
class ContrastiveLoss(MetricLoss):
    """``y·d² + (1−y)·[m − d]_+²`` over all pairs of the batch (or batch × reference).

    The positive and the negative terms are each averaged over their pairs and summed
    (so the many negatives do not swamp the positives — our reduction; Hadsell et al. sum).

    Args:
        margin: m, on L2-normalised embeddings (0.5 default; 0.5–1.0 usual).
        normalize: L2-normalise embeddings inside the loss.
    """

    def __init__(self, margin: float = 0.5, normalize: bool = True) -> None:
        super().__init__()
        if margin <= 0:
            raise ConfigError(f"config key 'loss.margin': must be > 0, got {margin}")
        self.margin, self.normalize = margin, normalize

    def forward(self, embeddings, labels, ref_emb=None, ref_labels=None):
        self_ref = ref_emb is None
        ref_emb = embeddings if self_ref else ref_emb
        ref_labels = labels if self_ref else ref_labels
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            x, r = embeddings.float(), ref_emb.float()
            if self.normalize:
                x, r = torch.nn.functional.normalize(x, dim=1), torch.nn.functional.normalize(r, dim=1)
            sq = (x.pow(2).sum(1, keepdim=True) + r.pow(2).sum(1)[None] - 2 * x @ r.T).clamp_min(0)
            d = (sq + 1e-12).sqrt()
            pos, neg = pair_masks(labels, ref_labels, self_ref)
            zero = x.sum() * 0
            pos_term = sq[pos].mean() if pos.any() else zero
            neg_term = (self.margin - d[neg]).clamp_min(0).pow(2).mean() if neg.any() else zero
            return pos_term + neg_term
