"""SoftTriple loss (Qian, Shang, Sun, Hu, Li & Jin 2019)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses

from dmlkit.losses import validate
from dmlkit.losses.proxy import ProxyLoss
from dmlkit.losses.registry import LOSSES


class SoftTripleLoss(ProxyLoss):
    """PML ``SoftTripleLoss`` plus the paper's centre-merging regulariser, computed per class.

    The regulariser is ``τ · Σ_c Σ_{t<s} sqrt(2 + 10⁻⁵ − 2·w_c^tᵀw_c^s) / (C·K·(K−1))`` over the
    normalised centres of each class (as in the authors' code). PML's ``SparseCentersRegularizer``
    computes the same value from the full (C·K)² similarity matrix, which does not fit in memory
    for thousands of classes (SOP); here only the C blocks of K×K are formed.
    """

    def __init__(self, loss: losses.SoftTripleLoss, num_classes: int, tau: float, lr_mult: float) -> None:
        super().__init__(loss, "soft_triple", num_classes, lr_mult)
        self.tau = tau

    def center_regularizer(self) -> torch.Tensor:
        """The (unweighted) regulariser on the current centres, in fp32."""
        k = self.loss.centers_per_class
        if k < 2:
            return self.loss.fc.sum() * 0
        centers = F.normalize(self.loss.fc.float(), dim=0).T.reshape(self.num_classes, k, -1)
        sims = centers @ centers.transpose(1, 2)
        upper = torch.triu(torch.ones(k, k, dtype=torch.bool, device=sims.device), diagonal=1)
        dist = (2 + 1e-5 - 2 * sims[:, upper].clamp(max=1)).sqrt()
        return dist.sum() / (self.num_classes * k * (k - 1))

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        value = super().forward(embeddings, labels, ref_emb, ref_labels)
        if self.tau == 0:
            return value
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            return value + self.tau * self.center_regularizer()


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
) -> SoftTripleLoss:
    """SoftTriple: K centres per class, relaxed similarity ``S_{i,c} = Σ_k softmax_k(x̂ᵀŵ_c^k/γ)·x̂ᵀŵ_c^k``,
    loss ``−log(e^{λ(S_{i,y}−δ)} / (e^{λ(S_{i,y}−δ)} + Σ_{j≠y} e^{λS_{i,j}}))`` + τ·(centre regulariser).

    Embeddings and centres are L2-normalised (PML ``SoftTripleLoss``, which matches the paper;
    centres initialised Kaiming-uniform as in the authors' code); regulariser:
    :class:`SoftTripleLoss`.

    Args:
        centers_per_class: K = 10.
        la: λ = 20.
        gamma: γ = 0.1.
        margin: δ = 0.01.
        tau: τ = 0.2 (0 disables the regulariser; it is 0 anyway for K = 1).
        lr_mult: Centre LR multiplier, 100 (the paper: 1e-2 for centres vs 1e-4 for the network).
    """
    validate.needs_classes("soft_triple", num_classes, embedding_dim)
    validate.positive_int("loss.centers_per_class", centers_per_class)
    validate.positive("loss.la", la)
    validate.positive("loss.gamma", gamma)
    validate.at_least("loss.margin", margin)
    validate.at_least("loss.tau", tau)
    validate.at_least("loss.lr_mult", lr_mult)
    loss = losses.SoftTripleLoss(
        num_classes, embedding_dim, centers_per_class=centers_per_class, la=la, gamma=gamma, margin=margin
    )
    return SoftTripleLoss(loss, num_classes, tau, lr_mult)
