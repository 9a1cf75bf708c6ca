"""The embedding head: global pooling, a linear layer to D dimensions, optional L2 normalisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dmlkit.errors import ConfigError

#: Pooling names: ``avg`` (most DML papers, DVML's 1024-d GoogLeNet feature), ``max`` (Intra-batch),
#: ``avgmax`` = avg + max, summed (STML, PL-Manifolds; methods.md §3).
POOLINGS = ("avg", "max", "avgmax")
#: Initialisations of the linear layer.
INITS = ("default", "orthogonal", "kaiming", "xavier")


def pool(features: torch.Tensor, mode: str = "avg") -> torch.Tensor:
    """Global pooling to (B, C).

    Accepts a (B, C, H, W) feature map, (B, N, C) tokens (pooled over all N tokens, class token
    included) or (B, C) vectors (returned unchanged). ``avgmax`` is the *sum* of average and max
    pooling, not their concatenation, so the size stays C.
    """
    if features.dim() == 2:
        return features
    if features.dim() == 4:
        dims: tuple[int, ...] = (2, 3)
    elif features.dim() == 3:
        dims = (1,)
    else:
        raise ValueError(f"cannot pool features of shape {tuple(features.shape)}: expected (B,C,H,W), (B,N,C) or (B,C)")
    if mode == "avg":
        return features.mean(dims)
    if mode == "max":
        return features.amax(dims)
    if mode == "avgmax":
        return features.mean(dims) + features.amax(dims)
    raise ConfigError(f"config key 'model.pooling': unknown {mode!r}; valid choices: {', '.join(POOLINGS)}")


def _check_choice(value: object, choices: tuple[str, ...], key: str) -> None:
    if value not in choices:
        raise ConfigError(f"config key '{key}': unknown {value!r}; valid choices: {', '.join(choices)}")


def check_head_options(embedding_dim: object, pooling: object, init: object, dropout: object) -> int:
    """Validate the head's settings; returns ``embedding_dim`` with ``None`` turned into 0.

    Raises:
        ConfigError: naming the ``model.*`` key at fault.
    """
    _check_choice(pooling, POOLINGS, "model.pooling")
    _check_choice(init, INITS, "model.head_init")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"config key 'model.head_dropout': expected a probability in [0, 1), got {dropout!r}")
    if embedding_dim is None:
        return 0
    if isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int) or embedding_dim < 0:
        raise ConfigError(
            f"config key 'model.embedding_dim': expected an integer >= 0 (0 or null: no linear layer), "
            f"got {embedding_dim!r}"
        )
    return embedding_dim


class EmbeddingHead(nn.Module):
    """Pool, (dropout,) project to ``embedding_dim`` and optionally L2-normalise.

    The steps are separate methods, because methods need the intermediate results:
    :meth:`pool` gives the backbone feature (DVML's reconstruction target), :meth:`project` the
    unnormalised embedding (Intra-batch's classifier input), :meth:`finish` the normalisation.

    Args:
        feature_dim: Channels of the backbone output.
        embedding_dim: Output size; ``0`` or ``None`` keeps the pooled features (no linear layer).
        pooling: ``avg`` (default), ``max`` or ``avgmax`` (sum of both), see :data:`POOLINGS`.
        normalize: L2-normalise the embedding (default ``True``).
        init: Weight initialisation of the linear layer: ``default`` (PyTorch's: uniform,
            kaiming with a=√5, uniform bias), ``orthogonal`` (PL-Manifolds/STML), ``kaiming``
            (normal, fan-in) or ``xavier`` (uniform); all but ``default`` zero the bias.
        dropout: Dropout probability before the linear layer (default 0: none).
    """

    def __init__(
        self,
        feature_dim: int,
        embedding_dim: int | None,
        pooling: str = "avg",
        normalize: bool = True,
        init: str = "default",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        embedding_dim = check_head_options(embedding_dim, pooling, init, dropout)
        self.pooling = pooling
        self.normalize = bool(normalize)
        self.feature_dim = feature_dim
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.linear: nn.Module = nn.Linear(feature_dim, embedding_dim) if embedding_dim else nn.Identity()
        self.embedding_dim = embedding_dim or feature_dim
        if isinstance(self.linear, nn.Linear) and init != "default":
            weight_init = {
                "orthogonal": nn.init.orthogonal_,
                "kaiming": nn.init.kaiming_normal_,
                "xavier": nn.init.xavier_uniform_,
            }[init]
            weight_init(self.linear.weight)
            nn.init.zeros_(self.linear.bias)

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        """Backbone output → (B, feature_dim)."""
        return pool(features, self.pooling)

    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, feature_dim) → unnormalised (B, embedding_dim)."""
        return self.linear(self.dropout(pooled))

    def finish(self, projected: torch.Tensor) -> torch.Tensor:
        """L2 normalisation if ``normalize`` (else the identity)."""
        return F.normalize(projected, dim=-1) if self.normalize else projected

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Backbone output → final embedding."""
        return self.finish(self.project(self.pool(features)))

    def extra_repr(self) -> str:
        return f"pooling={self.pooling!r}, normalize={self.normalize}"
