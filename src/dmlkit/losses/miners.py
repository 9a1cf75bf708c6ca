"""Miners by name, for pair/triplet losses: ``loss.miner: {name: ..., ...}`` in a config.

A miner picks which pairs or triplets of the batch enter the loss. When a loss is built with
a ``miner`` entry, parameters the entry leaves out that the loss also has (``margin``,
``squared``, ``normalize``) are taken from the loss, so that by default the miner measures
distances as the loss does.
"""

from __future__ import annotations

from pytorch_metric_learning import miners

from dmlkit.losses import validate
from dmlkit.losses.pml import lp_distance
from dmlkit.losses.registry import MINERS


@MINERS.register("semihard")
def semihard(margin: float = 0.2, squared: bool = False, normalize: bool = True) -> miners.TripletMarginMiner:
    """Semi-hard triplets (Schroff et al. 2015, FaceNet): ``d(a,p) < d(a,n) <= d(a,p) + margin``.

    Every semi-hard triplet of the batch is kept (PML ``TripletMarginMiner(type_of_triplets=
    "semihard")``). FaceNet uses one semi-hard negative per positive pair (TensorFlow's
    ``triplet_semihard_loss``: the nearest negative farther than the positive, else the farthest
    negative); here a positive pair without a semi-hard negative contributes nothing.
    """
    validate.at_least("loss.miner.margin", margin)
    return miners.TripletMarginMiner(
        margin=margin, type_of_triplets="semihard", distance=lp_distance(normalize, squared)
    )


@MINERS.register("batch_hard")
def batch_hard(squared: bool = False, normalize: bool = True) -> miners.BatchHardMiner:
    """Batch-hard triplets (Hermans, Beyer & Leibe 2017): per anchor its farthest positive and
    nearest negative (PML ``BatchHardMiner``); anchors without a positive or a negative are skipped.
    """
    return miners.BatchHardMiner(distance=lp_distance(normalize, squared))


@MINERS.register("multi_similarity")
def multi_similarity(epsilon: float = 0.1) -> miners.MultiSimilarityMiner:
    """Multi-Similarity pair mining (Wang et al. 2019), cosine similarity, ε = 0.1: negatives with
    ``s_ik > min_pos s_ij − ε`` and positives with ``s_ij < max_neg s_ik + ε`` (PML ``MultiSimilarityMiner``).
    """
    validate.at_least("loss.miner.epsilon", epsilon)
    return miners.MultiSimilarityMiner(epsilon=epsilon)


@MINERS.register("distance_weighted")
def distance_weighted(cutoff: float = 0.5, nonzero_loss_cutoff: float = 1.4) -> miners.DistanceWeightedMiner:
    """Distance-weighted sampling (Wu et al. 2017, "Sampling Matters"): see :func:`dws_miner`."""
    return dws_miner(cutoff, nonzero_loss_cutoff, key="loss.miner")


def dws_miner(cutoff: float, nonzero_loss_cutoff: float, key: str = "loss") -> miners.DistanceWeightedMiner:
    """PML ``DistanceWeightedMiner``: triplets whose negatives are drawn with weight ∝ 1/q(d).

    ``q(d) ∝ d^{n−2}(1 − d²/4)^{(n−3)/2}`` is the density of distances between uniform points on
    the unit sphere of the embedding dimension n; d is clipped below at ``cutoff`` (0.5) and
    negatives farther than ``nonzero_loss_cutoff`` (1.4) are never drawn. Embeddings are always
    L2-normalised (the weights assume the unit sphere). Differences from Wu et al.'s reference
    code: each anchor gets K triplets (K = images of its class in the batch) whose positives are
    drawn at random with replacement, rather than one triplet per other positive; an anchor
    whose negatives all lie beyond ``nonzero_loss_cutoff`` gets no triplet (the reference code
    then samples uniformly).
    """
    validate.in_open_interval(f"{key}.cutoff", cutoff, 0.0, 2.0)
    validate.greater_than(f"{key}.nonzero_loss_cutoff", nonzero_loss_cutoff, cutoff, "cutoff")
    return miners.DistanceWeightedMiner(cutoff=cutoff, nonzero_loss_cutoff=nonzero_loss_cutoff)
