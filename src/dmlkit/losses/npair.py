"""N-pair (Sohn 2016), Angular (Wang et al. 2017) and Lifted Structure (Song et al. 2016) losses."""

from __future__ import annotations

from pytorch_metric_learning import distances, losses, miners, regularizers

from dmlkit.errors import ConfigError
from dmlkit.losses.pml import PMLLoss, lp_distance
from dmlkit.losses.registry import LOSSES


@LOSSES.register("npair")
def npair(l2_reg: float = 0.002, normalize: bool = False) -> PMLLoss:
    """N-pair-mc: ``1/N Σ_i log(1 + Σ_{j≠i} exp(f_iᵀf_j⁺ − f_iᵀf_i⁺)) + λ·mean‖f‖²``.

    One (anchor, positive) pair is taken per class of the batch; the positives of the
    other classes are the negatives (cross-entropy over dot products). Sohn's protocol
    keeps embeddings unnormalised (``normalize: false``) and adds the L2 regulariser
    with λ = ``l2_reg`` (0.002).
    """
    if l2_reg < 0:
        raise ConfigError(f"config key 'loss.l2_reg': must be >= 0, got {l2_reg}")
    loss = losses.NPairsLoss(
        distance=distances.DotProductSimilarity(normalize_embeddings=normalize),
        embedding_regularizer=regularizers.LpRegularizer(p=2, power=2) if l2_reg else None,
        embedding_reg_weight=l2_reg,
    )
    return PMLLoss(loss)


@LOSSES.register("angular")
def angular(alpha: float = 45.0) -> PMLLoss:
    """Angular loss, N-pair form: ``log(1 + Σ_n exp(4tan²α (a+p)ᵀn − 2(1+tan²α) aᵀp))``, α = 45°.

    Embeddings are L2-normalised before PML sees them: PML's AngularLoss normalises anchors and
    positives but uses the negatives as given. (Wang et al. also add it to the N-pair loss with λ = 2.)
    """
    if not 0 < alpha < 90:
        raise ConfigError(f"config key 'loss.alpha': degrees in (0, 90), got {alpha}")
    return PMLLoss(losses.AngularLoss(alpha=alpha), normalize_input=True)


@LOSSES.register("lifted")
def lifted(neg_margin: float = 1.0, normalize: bool = True) -> PMLLoss:
    """Lifted structure: ``J_ij = log(Σ_{k∈N_i} e^{α−D_ik} + Σ_{l∈N_j} e^{α−D_jl}) + D_ij``,
    loss ``1/(2|P|) Σ [J_ij]_+²`` over positive pairs, α = ``neg_margin`` = 1 (Song et al. 2016).
    """
    return PMLLoss(losses.LiftedStructureLoss(neg_margin=neg_margin, pos_margin=0, distance=lp_distance(normalize)))


@LOSSES.register("multi_similarity")
def multi_similarity(
    alpha: float = 2.0, beta: float = 50.0, base: float = 1.0, epsilon: float = 0.1, mining: bool = True
) -> PMLLoss:
    """Multi-Similarity (Wang et al. 2019): α = 2, β = 50, λ = ``base`` = 1 (0.5 in some code), with
    its pair miner (ε = 0.1) unless ``mining`` is false. Cosine similarity.
    """
    loss = losses.MultiSimilarityLoss(alpha=alpha, beta=beta, base=base)
    return PMLLoss(loss, miners.MultiSimilarityMiner(epsilon=epsilon) if mining else None)
