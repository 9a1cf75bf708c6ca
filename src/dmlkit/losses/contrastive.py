"""Contrastive loss (Hadsell, Chopra & LeCun 2006) with the squared hinge."""

from __future__ import annotations

import torch
from pytorch_metric_learning import losses

from dmlkit.losses import validate
from dmlkit.losses.pml import PMLLoss, lp_distance, reducer
from dmlkit.losses.registry import LOSSES


class SquaredHingeContrastiveLoss(losses.ContrastiveLoss):
    """PML's ``ContrastiveLoss`` with squared hinges: ``[d − m_pos]_+²`` and ``[m_neg − d]_+²``.

    PML's own class uses the plain hinges ``[d − m_pos]_+`` and ``[m_neg − d]_+``; a squared
    distance (``power=2``) would give ``[m − d²]_+``, not Hadsell's ``[m − d]_+²``. Only Euclidean
    (non-inverted) distances are meaningful here.
    """

    def pos_calc(self, pos_pair_dist: torch.Tensor, margin: float) -> torch.Tensor:
        return torch.relu(pos_pair_dist - margin).pow(2)

    def neg_calc(self, neg_pair_dist: torch.Tensor, margin: float) -> torch.Tensor:
        return torch.relu(margin - neg_pair_dist).pow(2)


@LOSSES.register("contrastive")
def contrastive(
    neg_margin: float = 1.0, pos_margin: float = 0.0, normalize: bool = True, reduction: str = "nonzero_mean"
) -> PMLLoss:
    """Contrastive loss ``y·[d − m_pos]_+² + (1−y)·[m_neg − d]_+²`` over all pairs of the batch.

    With ``pos_margin = 0`` this is Hadsell et al.'s ``y·d² + (1−y)·[m − d]_+²`` (without their
    factor ½). Pairs are every ordered pair (i, j), i ≠ j, of the batch (or batch × reference set);
    a ``loss.miner`` restricts them.

    Args:
        neg_margin: m, the distance beyond which negatives cost nothing. methods.md §5 gives
            0.5–1.0 on normalised embeddings; 1.0 (PML's and Roth et al. 2020's default).
        pos_margin: Distance under which positives cost nothing (0 in Hadsell et al.).
        normalize: L2-normalise embeddings inside the loss (distances then lie in [0, 2]).
        reduction: How each of the two terms is averaged before they are summed:
            ``nonzero_mean`` (default, PML's) over its pairs with non-zero loss, or ``mean`` over
            all its pairs. The paper sums over pairs; any reduction is our decision. With
            ``mean`` the many inactive negatives dilute the repulsion while every positive
            keeps pulling.
    """
    validate.at_least("loss.pos_margin", pos_margin)
    validate.positive("loss.neg_margin", neg_margin)
    validate.greater_than("loss.neg_margin", neg_margin, pos_margin, "pos_margin")
    validate.flag("loss.normalize", normalize)
    loss = SquaredHingeContrastiveLoss(
        pos_margin=pos_margin,
        neg_margin=neg_margin,
        distance=lp_distance(normalize),
        reducer=reducer(reduction),
    )
    return PMLLoss(loss, "contrastive", miner_context={"normalize": normalize})
