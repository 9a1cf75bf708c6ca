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


def reconstruction_loss(reconstructed: torch.Tensor, target: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """Squared L2 reconstruction error, averaged over every leading dimension (samples T and batch B).

    ``reduction="sum"`` sums the squared error over the feature dimensions (our default, methods.md
    §1(c)); ``"mean"`` averages it (an MSE), which scales the loss down by ``feature_dim``.
    """
    sq = (reconstructed - target).pow(2)
    per_item = sq.sum(dim=-1) if reduction == "sum" else sq.mean(dim=-1)
    return per_item.mean()
