"""The minibatch magnet loss (Rippel et al. 2016, eq. 5), in log space with σ² (not σ⁴).

For a batch of examples grouped into clusters (``cluster``: the batch cluster of each example)
with class labels, cluster means and the variance are re-estimated from the batch:

    μ̂_m = mean of the batch examples of cluster m
    σ̂²  = Σ_n ‖r_n − μ̂(r_n)‖² / (N − 1)
    a_{n,m} = ‖r_n − μ̂_m‖² / (2 σ̂²)
    ℓ_n = [ a_{n,own} + α + log Σ_{m: class(m) ≠ class(n)} exp(−a_{n,m}) ]_+

and the loss is the mean of ℓ_n. Gradients flow through μ̂ and σ̂². The denominator holds only the
clusters of *other* classes (methods.md §2(g) 4), and the log-sum-exp keeps it finite when
distances are large, where the reference ports' ``log(num / (den + 1e-8))`` underflows. σ̂² is
clamped at ``eps``. Examples whose class has no other-class cluster in the batch get no loss term
(their denominator would be empty); they are left out of the mean.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from dmlkit.losses import validate
from dmlkit.losses.base import MetricLoss
from dmlkit.losses.registry import LOSSES


class MagnetOutput(NamedTuple):
    """The batch loss, each example's loss ℓ_n (detached) and the batch variance σ̂² (detached)."""

    loss: torch.Tensor
    per_example: torch.Tensor
    variance: torch.Tensor


def magnet_loss(
    embeddings: torch.Tensor,
    cluster: torch.Tensor,
    labels: torch.Tensor,
    alpha: float = 1.0,
    eps: float = 1e-8,
) -> MagnetOutput:
    """Minibatch magnet loss of ``embeddings`` (N, dim) grouped by ``cluster`` (N,) with ``labels`` (N,).

    Cluster ids may be any integers; every cluster must hold examples of one class. Computed in fp32
    (fp64 stays fp64) with autocast off.

    Example:
        >>> x = torch.tensor([[0.0], [0.2], [5.0], [5.2]])
        >>> out = magnet_loss(x, torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 1, 1]), alpha=1.0)
        >>> round(out.variance.item(), 4), out.loss.item()  # well separated: every hinge is 0
        (0.0133, 0.0)
    """
    if embeddings.ndim != 2 or cluster.shape != (len(embeddings),) or labels.shape != (len(embeddings),):
        raise ValueError(
            f"embeddings (N, dim), cluster (N,) and labels (N,) expected; got {tuple(embeddings.shape)}, "
            f"{tuple(cluster.shape)}, {tuple(labels.shape)}"
        )
    if len(embeddings) < 2:
        raise ValueError("the magnet loss needs at least two examples")
    dtype = torch.float64 if embeddings.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=embeddings.device.type, enabled=False):
        x = embeddings.to(dtype)
        ids, inverse = torch.unique(cluster.to(x.device), return_inverse=True)
        n_clusters = len(ids)
        labels = labels.to(x.device)
        cluster_label = torch.zeros(n_clusters, dtype=labels.dtype, device=x.device).scatter_(0, inverse, labels)
        if not bool((cluster_label[inverse] == labels).all()):
            raise ValueError("every batch cluster must hold examples of a single class")
        onehot = F.one_hot(inverse, n_clusters).to(dtype)  # (N, M)
        counts = onehot.sum(0)
        means = (onehot.T @ x) / counts[:, None]  # (M, dim)
        sq = torch.cdist(x, means).pow(2)  # (N, M) squared distances to every batch mean
        own = sq.gather(1, inverse[:, None])[:, 0]
        variance = own.sum() / (len(x) - 1)
        scale = 1.0 / (2.0 * variance.clamp_min(eps))
        other = labels[:, None] != cluster_label[None, :]  # (N, M): clusters of other classes
        neg_logits = (-sq * scale).masked_fill(~other, float("-inf"))
        log_den = torch.logsumexp(neg_logits, dim=1)
        per_example = F.relu(own * scale + alpha + log_den)
        valid = other.any(1)
        per_example = torch.where(valid, per_example, torch.zeros_like(per_example))
        loss = per_example.sum() / valid.sum().clamp_min(1)
    return MagnetOutput(loss, per_example.detach(), variance.detach())


@LOSSES.register("magnet")
class UnimodalMagnetLoss(MetricLoss):
    """The magnet loss with one cluster per class of the batch (K = 1), for any P×K batch.

    The full method (per-class k-means clusters, neighbourhood sampling, cluster-based
    classification) is ``method: {name: magnet}`` (:mod:`dmlkit.methods.magnet`); this loss is its
    unimodal special case, usable wherever a plain metric loss is (methods.md §2(c)).

    Args:
        alpha: Margin α, the cluster separation gap (1.0 in every reference implementation).
        eps: Lower clamp of σ̂².
    """

    def __init__(self, alpha: float = 1.0, eps: float = 1e-8) -> None:
        super().__init__()
        validate.at_least("loss.alpha", alpha)
        validate.positive("loss.eps", eps)
        self.alpha, self.eps = float(alpha), float(eps)

    def forward(self, embeddings, labels, ref_emb=None, ref_labels=None) -> torch.Tensor:
        if ref_emb is not None or ref_labels is not None:
            raise NotImplementedError("loss 'magnet' takes no reference set")
        return magnet_loss(embeddings, labels, labels, self.alpha, self.eps).loss
