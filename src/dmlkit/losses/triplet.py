"""Triplet-family losses: Triplet (FaceNet), DVML's Triplet2 with distance-weighted sampling, Margin loss."""

from __future__ import annotations

from pytorch_metric_learning import losses, miners, reducers

from dmlkit.losses import validate
from dmlkit.losses.miners import dws_miner
from dmlkit.losses.pml import PMLLoss, lp_distance, reducer
from dmlkit.losses.registry import LOSSES

TRIPLET_MININGS = ("semihard", "hard", "all")
MARGIN_MININGS = ("distance_weighted", "all")


@LOSSES.register("triplet")
def triplet(
    margin: float = 0.2,
    squared: bool = True,
    mining: str = "semihard",
    normalize: bool = True,
    reduction: str = "mean",
) -> PMLLoss:
    """Triplet loss ``[d(a,p)² − d(a,n)² + α]_+`` (Schroff et al. 2015, FaceNet), DVML's "Triplet".

    Args:
        margin: α, 0.2 on L2-normalised embeddings (FaceNet).
        squared: Squared Euclidean distances (FaceNet's and DVML's form, methods.md §1(c) eq. 2);
            ``false`` gives ``[d(a,p) − d(a,n) + α]_+``.
        mining: ``semihard`` (FaceNet; every triplet with ``d(a,p) < d(a,n) <= d(a,p) + α``, see
            :func:`dmlkit.losses.miners.semihard`), ``hard`` (batch-hard, Hermans et al. 2017:
            farthest positive and nearest negative per anchor) or ``all`` triplets. The mining uses
            the loss's distance (squared or not).
        normalize: L2-normalise embeddings inside the loss.
        reduction: ``mean`` over the mined triplets (default; the formula's average) or
            ``nonzero_mean`` over those with non-zero loss (PML's default; Hermans et al.'s
            "batch all" with ``mining: all``).
    """
    validate.at_least("loss.margin", margin)
    validate.flag("loss.squared", squared)
    validate.flag("loss.normalize", normalize)
    validate.choice("loss.mining", mining, TRIPLET_MININGS)
    distance = lp_distance(normalize, squared)
    miner = None
    if mining == "semihard":
        miner = miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard", distance=distance)
    elif mining == "hard":
        miner = miners.BatchHardMiner(distance=distance)
    loss = losses.TripletMarginLoss(margin=margin, distance=distance, reducer=reducer(reduction))
    context = {"margin": margin, "squared": squared, "normalize": normalize}
    return PMLLoss(loss, "triplet", miner=miner, miner_context=context)


@LOSSES.register("triplet2_dws")
def triplet2_dws(
    margin: float = 0.2, cutoff: float = 0.5, nonzero_loss_cutoff: float = 1.4, reduction: str = "mean"
) -> PMLLoss:
    """DVML's "Triplet2": non-squared ``[α + d(a,p) − d(a,n)]_+`` on distance-weighted-sampled triplets.

    DVML (Lin et al. 2018, eq. 4) re-implements Wu et al.'s (2017) sampling with a plain triplet
    loss instead of their margin loss. Triplets come from PML's ``DistanceWeightedMiner`` (see
    :func:`dmlkit.losses.miners.dws_miner`: negatives ∝ 1/q(d), d clipped at ``cutoff`` = 0.5,
    none beyond ``nonzero_loss_cutoff`` = 1.4) and are scored by PML's ``TripletMarginLoss``.
    Embeddings are always L2-normalised (the sampling assumes the unit sphere).

    Args:
        margin: α, 0.2 (methods.md §1(c); DVML does not state it).
        cutoff: Lower clip of d in the sampling weights.
        nonzero_loss_cutoff: Negatives farther than this are never drawn.
        reduction: ``mean`` over the sampled triplets or ``nonzero_mean`` over the active ones.
    """
    validate.at_least("loss.margin", margin)
    miner = dws_miner(cutoff, nonzero_loss_cutoff)
    loss = losses.TripletMarginLoss(margin=margin, distance=lp_distance(True), reducer=reducer(reduction))
    return PMLLoss(loss, "triplet2_dws", miner=miner, miner_context={"margin": margin, "normalize": True})


@LOSSES.register("margin")
def margin(
    margin: float = 0.2,
    beta: float = 1.2,
    learn_beta: bool = True,
    beta_per_class: bool = True,
    nu: float = 0.0,
    mining: str = "distance_weighted",
    cutoff: float = 0.5,
    nonzero_loss_cutoff: float = 1.4,
    lr_mult: float = 50.0,
    num_classes: int = 0,
) -> PMLLoss:
    """Margin loss ``[α + y(d − β)]_+`` with distance-weighted sampling (Wu et al. 2017, "Sampling Matters").

    Each sampled triplet (a, p, n) adds ``[d(a,p) − β + α]_+ + [β − d(a,n) + α]_+``; the sum is
    divided by the number of non-zero terms (PML ``MarginLoss``, as in Wu et al.'s code), plus
    ``ν·β`` when β is learned. Embeddings are L2-normalised.

    Args:
        margin: α (0.2).
        beta: Initial boundary β (1.2).
        learn_beta: Learn β (Wu et al.: yes).
        beta_per_class: One β per training class (β of the anchor's class; default), as in Wu et
            al.'s code and the paper's class-specific β^(class); ``false`` learns one global β (PML's
            default). Needs the number of training classes (passed by dmlkit).
        nu: Weight ν of the β regulariser (0).
        mining: ``distance_weighted`` (Wu et al., :func:`dmlkit.losses.miners.dws_miner`) or ``all``
            triplets.
        cutoff, nonzero_loss_cutoff: Distance-weighted sampling parameters (0.5, 1.4).
        lr_mult: LR multiplier of β, 50 (our choice, after the defaults of Roth et al.'s 2020 code:
            β at 5e-4 with a base LR of 1e-5). Wu et al.'s code trains β with its own optimiser (SGD,
            momentum 0.9, LR 0.1, beside Adam 1e-4 for the network), which no multiplier reproduces.
    """
    validate.at_least("loss.margin", margin)
    validate.positive("loss.beta", beta)
    validate.flag("loss.learn_beta", learn_beta)
    validate.flag("loss.beta_per_class", beta_per_class)
    validate.at_least("loss.nu", nu)
    validate.at_least("loss.lr_mult", lr_mult)
    validate.choice("loss.mining", mining, MARGIN_MININGS)
    if beta_per_class:
        validate.needs_classes("margin", num_classes)
    miner = dws_miner(cutoff, nonzero_loss_cutoff) if mining == "distance_weighted" else None
    loss = losses.MarginLoss(
        margin=margin,
        nu=nu,
        beta=beta,
        triplets_per_anchor="all",
        learn_beta=learn_beta,
        num_classes=num_classes if beta_per_class else None,
        distance=lp_distance(True),
        reducer=reducers.DivisorReducer(),
    )
    return PMLLoss(loss, "margin", miner=miner, lr_mult=lr_mult, miner_context={"normalize": True})
