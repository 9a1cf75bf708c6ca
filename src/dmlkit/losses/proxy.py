"""Proxy and classification losses: Proxy-NCA, Proxy-Anchor, SoftTriple, Normalized Softmax.

Their proxies/class weights are fp32 parameters of the loss with their own LR multiplier
(:attr:`~dmlkit.losses.base.MetricLoss.lr_multiplier`, overridable with
``optimizer.loss_lr_mult``). They do not take a reference set (``ref_emb``).
"""

from __future__ import annotations

from pytorch_metric_learning import losses, regularizers

from dmlkit.errors import ConfigError
from dmlkit.losses.pml import PMLLoss
from dmlkit.losses.registry import LOSSES


def _need(num_classes: int, embedding_dim: int, name: str) -> None:
    if num_classes < 1 or embedding_dim < 1:
        raise ConfigError(f"loss {name!r} needs the number of training classes and the embedding size")


@LOSSES.register("proxy_nca")
def proxy_nca(
    softmax_scale: float = 1.0, lr_mult: float = 100.0, num_classes: int = 0, embedding_dim: int = 0
) -> PMLLoss:
    """Proxy-NCA (Movshovitz-Attias et al. 2017): NCA over one learnable proxy per class, squared
    Euclidean distance on normalised embeddings and proxies.

    PML's form keeps the true proxy in the softmax denominator (as ProxyNCA++ does); the
    original excludes it. ``softmax_scale`` > 1 gives ProxyNCA++'s temperature. Proxies ×100 LR.
    """
    _need(num_classes, embedding_dim, "proxy_nca")
    return PMLLoss(losses.ProxyNCALoss(num_classes, embedding_dim, softmax_scale=softmax_scale), lr_multiplier=lr_mult)


@LOSSES.register("proxy_anchor")
def proxy_anchor(
    margin: float = 0.1,
    alpha: float = 32.0,
    lr_mult: float = 100.0,
    num_classes: int = 0,
    embedding_dim: int = 0,
) -> PMLLoss:
    """Proxy-Anchor (Kim et al. 2020): α = 32, δ = ``margin`` = 0.1, proxies at ×100 LR."""
    _need(num_classes, embedding_dim, "proxy_anchor")
    return PMLLoss(
        losses.ProxyAnchorLoss(num_classes, embedding_dim, margin=margin, alpha=alpha), lr_multiplier=lr_mult
    )


@LOSSES.register("soft_triple")
def soft_triple(
    centers_per_class: int = 10,
    la: float = 20.0,
    gamma: float = 0.1,
    margin: float = 0.01,
    tau: float = 0.2,
    lr_mult: float = 100.0,
    num_classes: int = 0,
    embedding_dim: int = 0,
) -> PMLLoss:
    """SoftTriple (Qian et al. 2019): K = 10 centres per class, λ = ``la`` = 20, γ = 0.1, δ = 0.01,
    centre-merging regulariser weight τ = 0.2; centres at ×100 LR (1e-2 vs 1e-4 in the paper).
    """
    _need(num_classes, embedding_dim, "soft_triple")
    loss = losses.SoftTripleLoss(
        num_classes,
        embedding_dim,
        centers_per_class=centers_per_class,
        la=la,
        gamma=gamma,
        margin=margin,
        weight_regularizer=regularizers.SparseCentersRegularizer(num_classes, centers_per_class) if tau else None,
        weight_reg_weight=tau,
    )
    return PMLLoss(loss, lr_multiplier=lr_mult)


@LOSSES.register("normalized_softmax")
def normalized_softmax(
    temperature: float = 0.05, lr_mult: float = 1.0, num_classes: int = 0, embedding_dim: int = 0
) -> PMLLoss:
    """Normalized Softmax (Zhai & Wu 2019): cosine logits to class weights / T, T = 0.05."""
    _need(num_classes, embedding_dim, "normalized_softmax")
    if temperature <= 0:
        raise ConfigError(f"config key 'loss.temperature': must be > 0, got {temperature}")
    return PMLLoss(
        losses.NormalizedSoftmaxLoss(num_classes, embedding_dim, temperature=temperature),
        lr_multiplier=lr_mult,
    )
