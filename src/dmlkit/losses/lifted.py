"""Lifted structured loss (Song, Xiang, Jegelka & Savarese 2016)."""

from __future__ import annotations

from pytorch_metric_learning import losses

from dmlkit.losses import validate
from dmlkit.losses.pml import PMLLoss, lp_distance
from dmlkit.losses.registry import LOSSES


@LOSSES.register("lifted")
def lifted(alpha: float = 1.0, normalize: bool = False) -> PMLLoss:
    """Lifted structure: ``J_ij = log(Σ_{k∈N_i} e^{α−D_ik} + Σ_{l∈N_j} e^{α−D_jl}) + D_ij`` per positive
    pair, loss ``1/(2|P|) Σ_{(i,j)∈P} [J_ij]_+²``, α = 1 (Song et al. 2016, eq. 4).

    PML's ``LiftedStructureLoss`` (not ``GeneralizedLiftedStructureLoss``, which is Hermans et al.'s
    per-anchor log-sum-exp variant) computes exactly this: it visits each unordered pair twice,
    (i, j) and (j, i), with ``J²/2`` each and averages over the 2|P| ordered pairs. D is the
    (non-squared) Euclidean distance. The negatives N_i are every other-class sample of the batch.
    No reference set: with ``ref_emb`` PML matches the positive's *reference* index against
    *batch* indices when it gathers N_j, so that case raises instead.

    Args:
        alpha: α, the margin in the exponent (PML's ``neg_margin``).
        normalize: L2-normalise embeddings. Default ``false``: Song et al.'s Caffe model feeds the
            raw embedding to the loss (no normalisation layer), which produced the paper's figures;
            methods.md §5's convention of normalised embeddings is ``true``, where α = 1 is a far
            harder margin (distances lie in [0, 2]).
    """
    validate.positive("loss.alpha", alpha)
    validate.flag("loss.normalize", normalize)
    loss = losses.LiftedStructureLoss(neg_margin=alpha, pos_margin=0, distance=lp_distance(normalize))
    return PMLLoss(loss, "lifted", supports_ref=False, miner_context={"normalize": normalize})
