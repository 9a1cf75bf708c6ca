"""The embedding head: pooling, a linear layer to D dimensions, optional L2 normalisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dmlkit.errors import ConfigError

POOLINGS = ("avg", "max", "avgmax")
INITS = ("default", "orthogonal", "kaiming", "xavier")


def pool(features: torch.Tensor, mode: str) -> torch.Tensor:
    """Global pooling of a (B,C,H,W) map or (B,N,C) tokens to (B,C); (B,C) passes through.

    ``avgmax`` is the sum of average and max pooling (STML, PL-Manifolds).
    """
    if features.dim() == 2:
        return features
    dims = (2, 3) if features.dim() == 4 else (1,)
    if mode == "avg":
        return features.mean(dims)
    if mode == "max":
        return features.amax(dims)
    return features.mean(dims) + features.amax(dims)


class EmbeddingHead(nn.Module):
    """Pool, project to ``embedding_dim`` and optionally L2-normalise.

    Args:
        feature_dim: Channels of the backbone output.
        embedding_dim: Output size; ``0`` keeps the pooled features (no linear layer).
        pooling: ``avg`` (default), ``max`` (Intra-batch) or ``avgmax`` (sum of both; STML/PL-Manifolds).
        normalize: L2-normalise the embedding.
        init: Linear layer initialisation: ``default`` (PyTorch), ``orthogonal`` (STML), ``kaiming``,
            ``xavier``; the bias starts at zero except for ``default``.
    """

    def __init__(
        self,
        feature_dim: int,
        embedding_dim: int,
        pooling: str = "avg",
        normalize: bool = True,
        init: str = "default",
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"config key 'model.pooling': unknown {pooling!r}; valid choices: {', '.join(POOLINGS)}")
        if init not in INITS:
            raise ConfigError(f"config key 'model.head_init': unknown {init!r}; valid choices: {', '.join(INITS)}")
        if embedding_dim < 0:
            raise ConfigError(f"config key 'model.embedding_dim': must be >= 0, got {embedding_dim}")
        self.pooling, self.normalize = pooling, normalize
        self.linear: nn.Module = nn.Linear(feature_dim, embedding_dim) if embedding_dim else nn.Identity()
        self.embedding_dim = embedding_dim or feature_dim
        if isinstance(self.linear, nn.Linear) and init != "default":
            {
                "orthogonal": nn.init.orthogonal_,
                "kaiming": nn.init.kaiming_normal_,
                "xavier": nn.init.xavier_uniform_,
            }[init](self.linear.weight)
            nn.init.zeros_(self.linear.bias)

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        return pool(features, self.pooling)

    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.linear(pooled)

    def finish(self, projected: torch.Tensor) -> torch.Tensor:
        return F.normalize(projected, dim=-1) if self.normalize else projected

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.finish(self.project(self.pool(features)))
