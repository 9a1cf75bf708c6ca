"""DVML's extra networks (Lin et al. 2018, §3.5): the variational head and the decoder."""

from __future__ import annotations

import torch
from torch import nn


class VariationalHead(nn.Module):
    """Two parallel linear heads on the pooled features: μ and log σ² of q(z_V | x).

    Args:
        feature_dim: Size of the pooled backbone features x.
        embedding_dim: Size of z_V (the embedding size).
        logvar_clamp: log σ² is clamped to ``[-logvar_clamp, logvar_clamp]`` (methods.md §1(g) 4).
    """

    def __init__(self, feature_dim: int, embedding_dim: int, logvar_clamp: float = 10.0) -> None:
        super().__init__()
        self.mu = nn.Linear(feature_dim, embedding_dim)
        self.logvar = nn.Linear(feature_dim, embedding_dim)
        self.logvar_clamp = float(logvar_clamp)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logvar = self.logvar(features).clamp(-self.logvar_clamp, self.logvar_clamp)
        return self.mu(features), logvar


class Decoder(nn.Module):
    """``Linear(D → hidden) → tanh → Linear(hidden → feature_dim)``: reconstructs x from a synthesised ẑ.

    The output is linear because the target (pooled post-ReLU features) is non-negative and unbounded
    (methods.md §1(b), our decision).
    """

    def __init__(self, embedding_dim: int, feature_dim: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        hidden = hidden_dim or embedding_dim
        self.layers = nn.Sequential(nn.Linear(embedding_dim, hidden), nn.Tanh(), nn.Linear(hidden, feature_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) summed over dimensions, averaged over the batch (to be minimised).

    ``½ Σ_j (μ_j² + σ_j² − log σ_j² − 1)``; the paper's eq. 9 prints its negative.

    Example:
        >>> kl_to_standard_normal(torch.zeros(3, 4), torch.zeros(3, 4)).item()
        0.0
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(dim=-1).mean()


#: The reconstruction forms of :func:`reconstruction_loss`.
RECONSTRUCTIONS = ("mean", "norm", "sum")


def reconstruction_loss(reconstructed: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Reconstruction error of every item, averaged over every leading dimension (samples T and batch B).

    Per item: ``"mean"`` the mean squared error over the feature dimensions (MSE; the default, as GeDML and
    the seed group's code); ``"norm"`` the L2 norm ``‖x − Dec(ẑ)‖₂`` (the paper's eq. 9 as printed; ``1e-12``
    under the root keeps its gradient finite at 0); ``"sum"`` the squared error summed over the dimensions
    (``feature_dim`` times the MSE: it collapses DVML in phase 2, see docs/dvml.md).

    Example:
        >>> x, y = torch.zeros(1, 4), torch.full((1, 4), 2.0)
        >>> [round(reconstruction_loss(y, x, r).item(), 6) for r in RECONSTRUCTIONS]
        [4.0, 4.0, 16.0]
    """
    sq = (reconstructed - target).pow(2)
    if reduction == "sum":
        per_item = sq.sum(dim=-1)
    elif reduction == "norm":
        per_item = (sq.sum(dim=-1) + 1e-12).sqrt()
    else:
        per_item = sq.mean(dim=-1)
    return per_item.mean()
