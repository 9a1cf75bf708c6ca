"""Triplet-family losses: Triplet (FaceNet), Triplet2 with distance-weighted sampling, Margin loss."""

from __future__ import annotations

from pytorch_metric_learning import losses, miners, reducers

from dmlkit.errors import ConfigError
from dmlkit.losses.pml import PMLLoss, lp_distance
from dmlkit.losses.registry import LOSSES

MININGS = ("semihard", "hard", "all")


def _check_margin(margin: float) -> None:
    if margin < 0:
        raise ConfigError(f"config key 'loss.margin': must be >= 0, got {margin}")


@LOSSES.register("triplet")
def triplet(margin: float = 0.2, squared: bool = False, mining: str = "semihard", normalize: bool = True) -> PMLLoss:
    """Triplet loss ``[d(a,p) − d(a,n) + α]_+`` (Schroff et al. 2015), mean over the mined triplets.

    Args:
        margin: α (0.2 on normalised embeddings).
        squared: Use squared distances (DVML's "Triplet", FaceNet's form).
        mining: ``semihard`` (FaceNet), ``hard`` (batch-hard, Hermans et al.) or ``all`` triplets.
        normalize: L2-normalise embeddings inside the loss.

    The mean runs over all mined triplets, zero-loss ones included (the formula's mean;
    PML's default would average over the non-zero ones only).
    """
    _check_margin(margin)
    if mining not in MININGS:
        raise ConfigError(f"config key 'loss.mining': unknown {mining!r}; valid choices: {', '.join(MININGS)}")
    distance = lp_distance(normalize, squared)
    miner = None
    if mining == "semihard":
        miner = miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard", distance=distance)
    elif mining == "hard":
        miner = miners.BatchHardMiner(distance=distance)
    loss = losses.TripletMarginLoss(margin=margin, distance=distance, reducer=reducers.MeanReducer())
    return PMLLoss(loss, miner)


@LOSSES.register("triplet2_dws")
def triplet2_dws(margin: float = 0.2, cutoff: float = 0.5, nonzero_loss_cutoff: float = 1.4) -> PMLLoss:
    """DVML's "Triplet2": non-squared ``[α + d(a,p) − d(a,n)]_+`` on triplets from distance-weighted sampling.

    Negatives are drawn with weight ∝ 1/q(d) (Wu et al. 2017), d clipped at ``cutoff``,
    pairs farther than ``nonzero_loss_cutoff`` never drawn; embeddings L2-normalised.
    """
    _check_margin(margin)
    miner = miners.DistanceWeightedMiner(cutoff=cutoff, nonzero_loss_cutoff=nonzero_loss_cutoff)
    loss = losses.TripletMarginLoss(margin=margin, distance=lp_distance(True), reducer=reducers.MeanReducer())
    return PMLLoss(loss, miner)


@LOSSES.register("margin")
def margin(
    margin: float = 0.2,
    beta: float = 1.2,
    learn_beta: bool = True,
    beta_per_class: bool = False,
    nu: float = 0.0,
    cutoff: float = 0.5,
    nonzero_loss_cutoff: float = 1.4,
    beta_lr_mult: float = 1.0,
    num_classes: int = 0,
) -> PMLLoss:
    """Margin loss ``[α + y(d − β)]_+`` with distance-weighted sampling (Wu et al. 2017).

    Args:
        margin: α (0.2). beta: initial boundary β (1.2), learnable by default.
        beta_per_class: One β per class (needs the number of classes) instead of a global one.
        nu: Weight of the β regulariser.
        beta_lr_mult: LR multiplier of β.
    """
    _check_margin(margin)
    loss = losses.MarginLoss(
        margin=margin,
        nu=nu,
        beta=beta,
        triplets_per_anchor="all",
        learn_beta=learn_beta,
        num_classes=num_classes if beta_per_class else None,
    )
    miner = miners.DistanceWeightedMiner(cutoff=cutoff, nonzero_loss_cutoff=nonzero_loss_cutoff)
    return PMLLoss(loss, miner, lr_multiplier=beta_lr_mult)
