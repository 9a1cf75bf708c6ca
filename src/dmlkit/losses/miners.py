"""Miners by name, usable in any pair/triplet loss as ``loss.miner: {name: ..., ...}``."""

from __future__ import annotations

from pytorch_metric_learning import miners

from dmlkit.losses.pml import lp_distance
from dmlkit.losses.registry import MINERS


@MINERS.register("semihard")
def semihard(margin: float = 0.2, squared: bool = False, normalize: bool = True):
    """Semi-hard triplets (FaceNet): d(a,p) < d(a,n) < d(a,p) + margin."""
    return miners.TripletMarginMiner(
        margin=margin, type_of_triplets="semihard", distance=lp_distance(normalize, squared)
    )


@MINERS.register("batch_hard")
def batch_hard(squared: bool = False, normalize: bool = True):
    """Hardest positive and hardest negative per anchor (Hermans et al. 2017)."""
    return miners.BatchHardMiner(distance=lp_distance(normalize, squared))


@MINERS.register("multi_similarity")
def multi_similarity(epsilon: float = 0.1):
    """Multi-Similarity pair mining (Wang et al. 2019), cosine similarity, ε = 0.1."""
    return miners.MultiSimilarityMiner(epsilon=epsilon)


@MINERS.register("distance_weighted")
def distance_weighted(cutoff: float = 0.5, nonzero_loss_cutoff: float = 1.4, normalize: bool = True):
    """Distance-weighted sampling (Wu et al. 2017): negatives drawn ∝ 1/q(d), d clipped at ``cutoff``."""
    return miners.DistanceWeightedMiner(cutoff=cutoff, nonzero_loss_cutoff=nonzero_loss_cutoff)
