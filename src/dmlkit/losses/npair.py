"""N-pair (Sohn 2016) and Angular (Wang et al. 2017) losses: softmax-style losses over (anchor, positive) pairs."""

from __future__ import annotations

from pytorch_metric_learning import distances, losses, regularizers

from dmlkit.losses import validate
from dmlkit.losses.pml import PMLLoss
from dmlkit.losses.registry import LOSSES


@LOSSES.register("npair")
def npair(l2_reg: float = 0.002, normalize: bool = False) -> PMLLoss:
    """N-pair-mc loss (Sohn 2016; DVML eq. 3) with an L2-norm regulariser.

    ``1/N Σ_i log(1 + Σ_{j≠i} exp(f_iᵀf_j⁺ − f_iᵀf_i⁺)) + λ·mean_b ‖f_b‖²`` over N (anchor,
    positive) pairs of N distinct classes: the other classes' positives are the negatives
    (softmax cross-entropy over the N×N dot products, PML ``NPairsLoss``).

    The intended batch is N classes × 2 images (DVML: 64 × 2), for which this is exactly eq. 3.
    With K > 2 images per class PML takes one pair per class, the first two images of the class in
    batch order, and ignores the others (they still enter the regulariser, whose mean runs over
    the whole batch). No reference set (``ref_emb``): PML's ``NPairsLoss`` does not support one.

    Args:
        l2_reg: λ, 0.002 (our choice within methods.md §5's 0.002–0.02; no authors' code exists).
            TensorFlow's ``npairs_loss(reg_lambda)`` applies ``reg_lambda/4·(mean‖a‖² + mean‖p‖²)``,
            i.e. our ``l2_reg = reg_lambda/2``: its default 0.002 is our 0.001.
        normalize: L2-normalise embeddings (``false``: Sohn keeps them unnormalised and relies
            on the regulariser; DVML does the same for N-pair, methods.md §1(b)).
    """
    validate.at_least("loss.l2_reg", l2_reg)
    validate.flag("loss.normalize", normalize)
    loss = losses.NPairsLoss(
        distance=distances.DotProductSimilarity(normalize_embeddings=normalize),
        embedding_regularizer=regularizers.LpRegularizer(p=2, power=2) if l2_reg else None,
        embedding_reg_weight=l2_reg,
    )
    return PMLLoss(loss, "npair", supports_ref=False, takes_miner=False)


@LOSSES.register("angular")
def angular(alpha: float = 45.0) -> PMLLoss:
    """Angular loss (Wang et al. 2017), N-pair form, on L2-normalised embeddings.

    For every positive pair (a, p) of the batch (both orders), with every other-class sample n
    as negative: ``log(1 + Σ_n exp(4tan²α·(a+p)ᵀn − 2(1+tan²α)·aᵀp))``; mean over the pairs
    (PML ``AngularLoss``). Wang et al. use one pair per class (N-pair batches) and usually add the
    N-pair loss (``npair + 2·angular``); here the angular term stands alone (use a method to combine).

    PML's ``AngularLoss`` normalises anchors and positives but takes the negatives as given, so
    embeddings are L2-normalised before PML sees them.

    Args:
        alpha: α in degrees, 45 (typical; Wang et al. tune 36°–55°).
    """
    validate.in_open_interval("loss.alpha", alpha, 0.0, 90.0)
    return PMLLoss(losses.AngularLoss(alpha=alpha), "angular", normalize_input=True)
