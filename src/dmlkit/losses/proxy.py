"""Proxy and classification losses: Proxy-NCA, Proxy-Anchor, Normalized Softmax (SoftTriple: ``soft_triple.py``).

Their proxies/class weights are fp32 parameters of the loss, trained at the loss's
:attr:`~dmlkit.losses.base.MetricLoss.lr_mult` times the base LR (the config key ``loss.lr_mult``;
one name for the one multiplier). The loss is computed in fp32 with autocast disabled,
whatever the precision of the embeddings. Labels must be ``0 .. num_classes − 1``. They take no
reference set and no miner.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses
from torch import nn

from dmlkit.losses import validate
from dmlkit.losses.base import MetricLoss
from dmlkit.losses.pml import PMLLoss, check_reference, compute_dtype
from dmlkit.losses.registry import LOSSES


def check_labels(name: str, labels: torch.Tensor, num_classes: int) -> None:
    """Raise a clear error when a label has no proxy (PML would fail inside ``one_hot``/indexing)."""
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"loss {name!r}: labels must lie in 0..{num_classes - 1} (one proxy per training class), "
            f"got {int(labels.min())}..{int(labels.max())}"
        )


class ProxyLoss(PMLLoss):
    """A PML proxy/classifier loss: fp32 only (PML casts its parameters to the input dtype), label check."""

    def __init__(self, loss: nn.Module, name: str, num_classes: int, lr_mult: float) -> None:
        super().__init__(loss, name, lr_mult=lr_mult, supports_ref=False, takes_miner=False, keep_float64=False)
        self.num_classes = num_classes

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_labels(self.name, labels, self.num_classes)
        return super().forward(embeddings, labels, ref_emb, ref_labels)


class ProxyNCALoss(MetricLoss):
    """Proxy-NCA (Movshovitz-Attias et al. 2017), written here because PML's form differs.

    ``−log(exp(−s·‖x̂ − p̂_y‖²) / Σ_{z≠y} exp(−s·‖x̂ − p̂_z‖²))``, mean over the batch, with x̂ and the
    proxies p̂ L2-normalised. The paper's denominator leaves out the true proxy;
    ``include_positive=True`` keeps it (ProxyNCA++ and PML ``ProxyNCALoss``: a softmax
    cross-entropy, bounded below by 0). Proxies are initialised with Kaiming-normal (fan-out), our
    choice (Kim et al.'s Proxy-Anchor initialisation; no authors' code of Proxy-NCA exists). fp64
    embeddings give an fp64 loss (with fp64 copies of the proxies).

    Args:
        num_classes: Number of training classes (one proxy each).
        embedding_dim: Embedding size.
        softmax_scale: s, multiplying the squared distances (1 in the paper; ProxyNCA++ scales
            embeddings and proxies by 3 each, i.e. s = 9).
        include_positive: Keep the true proxy in the denominator.
        lr_mult: LR factor of the proxies.
    """

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        softmax_scale: float = 1.0,
        include_positive: bool = False,
        lr_mult: float = 100.0,
    ) -> None:
        super().__init__()
        self.proxies = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.kaiming_normal_(self.proxies, mode="fan_out")
        self.num_classes = num_classes
        self.softmax_scale = softmax_scale
        self.include_positive = include_positive
        self.lr_mult = lr_mult

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_reference("proxy_nca", ref_emb, ref_labels, supported=False)
        check_labels("proxy_nca", labels, self.num_classes)
        dtype = compute_dtype(embeddings, keep_float64=True)
        labels = labels.to(embeddings.device)
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            x = F.normalize(embeddings.to(dtype), dim=1)
            proxies = F.normalize(self.proxies.to(dtype), dim=1)
            sq_dist = (2 - 2 * x @ proxies.T).clamp_min(0)  # ‖x̂ − p̂‖² of unit vectors
            logits = -self.softmax_scale * sq_dist
            positive = logits.gather(1, labels[:, None]).squeeze(1)
            if not self.include_positive:
                logits = logits.masked_fill(F.one_hot(labels, self.num_classes).bool(), float("-inf"))
            return (torch.logsumexp(logits, dim=1) - positive).mean()

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, softmax_scale={self.softmax_scale:g}, " + (
            f"include_positive={self.include_positive}, lr_mult={self.lr_mult:g}"
        )


@LOSSES.register("proxy_nca")
def proxy_nca(
    softmax_scale: float = 1.0,
    include_positive: bool = False,
    lr_mult: float = 100.0,
    num_classes: int = 0,
    embedding_dim: int = 0,
) -> ProxyNCALoss:
    """Proxy-NCA (Movshovitz-Attias et al. 2017), see :class:`ProxyNCALoss`.

    Args:
        softmax_scale: Scale of the squared distances (1; 9 for ProxyNCA++).
        include_positive: Keep the true proxy in the softmax denominator (ProxyNCA++/PML form).
        lr_mult: Proxy LR multiplier, 100 (our choice, as Proxy-Anchor's: the paper only says
            "higher", no authors' code exists; Roth et al. 2020 use ×50, Kim et al.'s Proxy-NCA
            baseline ×1 with a softmax scale of 32).
    """
    validate.needs_classes("proxy_nca", num_classes, embedding_dim)
    validate.positive("loss.softmax_scale", softmax_scale)
    validate.flag("loss.include_positive", include_positive)
    validate.at_least("loss.lr_mult", lr_mult)
    return ProxyNCALoss(num_classes, embedding_dim, softmax_scale, include_positive, lr_mult)


@LOSSES.register("proxy_anchor")
def proxy_anchor(
    margin: float = 0.1, alpha: float = 32.0, lr_mult: float = 100.0, num_classes: int = 0, embedding_dim: int = 0
) -> ProxyLoss:
    """Proxy-Anchor (Kim, Kim, Cho & Kwak 2020), PML ``ProxyAnchorLoss``, which matches the paper:

    ``1/|P⁺| Σ_{p∈P⁺} log(1 + Σ_{x∈X_p⁺} e^{−α(s(x,p)−δ)}) + 1/|P| Σ_{p∈P} log(1 + Σ_{x∈X_p⁻} e^{α(s(x,p)+δ)})``
    with s the cosine similarity, P⁺ the proxies of classes present in the batch and P all proxies.
    Proxies are initialised Kaiming-normal (fan-out) as in the authors' code.

    Args:
        margin: δ = 0.1.
        alpha: α = 32.
        lr_mult: Proxy LR multiplier, 100 (the paper).
    """
    validate.needs_classes("proxy_anchor", num_classes, embedding_dim)
    validate.at_least("loss.margin", margin)
    validate.positive("loss.alpha", alpha)
    validate.at_least("loss.lr_mult", lr_mult)
    loss = losses.ProxyAnchorLoss(num_classes, embedding_dim, margin=margin, alpha=alpha)
    return ProxyLoss(loss, "proxy_anchor", num_classes, lr_mult)


@LOSSES.register("normalized_softmax")
def normalized_softmax(
    temperature: float = 0.05, lr_mult: float = 1.0, num_classes: int = 0, embedding_dim: int = 0
) -> ProxyLoss:
    """Normalized Softmax (Zhai & Wu 2019, "Classification is a Strong Baseline"), PML ``NormalizedSoftmaxLoss``.

    Cross-entropy over ``cos(x, w_c)/T`` with embeddings and class weights L2-normalised, T = 0.05,
    no bias. The paper's layer normalisation of the embedding (without affine parameters) belongs
    to the model head, not to this loss. Class weights are initialised N(0, 1) (PML's default).

    Args:
        temperature: T.
        lr_mult: Class-weight LR multiplier, 1 (our default: no separate rate; the paper states none).
    """
    validate.needs_classes("normalized_softmax", num_classes, embedding_dim)
    validate.positive("loss.temperature", temperature)
    validate.at_least("loss.lr_mult", lr_mult)
    loss = losses.NormalizedSoftmaxLoss(num_classes, embedding_dim, temperature=temperature)
    return ProxyLoss(loss, "normalized_softmax", num_classes, lr_mult)
