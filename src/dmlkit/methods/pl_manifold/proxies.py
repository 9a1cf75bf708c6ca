"""The proxy manifold: learnable proxies, each with a location and its own linear piece (methods.md §3(b)).

A proxy ρ_k is "treated like a data embedding": its piece is the affine subspace through its location with
the orthonormal basis :meth:`ProxyManifold.bases`. Both are learnt by backpropagation, from the neighbourhood
loss only (:func:`~dmlkit.methods.pl_manifold.losses.neighbourhood_loss`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dmlkit.errors import ConfigError
from dmlkit.losses import validate
from dmlkit.methods.pl_manifold.piecewise_linear import compute_dtype, orthogonal_and_inplane, orthonormal_columns
from dmlkit.methods.pl_manifold.similarity import pl_similarity


class ProxyManifold(nn.Module):
    """``num_proxies`` proxies in a ``dim``-dimensional embedding space with rank-``rank`` pieces.

    [decision] Initialisation (methods.md §3(g) 7, "proxies start random"): locations are standard normal
    vectors scaled to unit length, on the sphere where the L2-normalised embeddings live; raw bases are
    standard normal (orthonormalised by :meth:`bases`). Parameters are created in fp32.

    Args:
        dim: Embedding size d.
        num_proxies: N_ρ (100, slide 16; 0 = no proxies).
        rank: Dimension r of each proxy's piece (that of the data pieces).
        generator: Random generator of the initialisation (the global one if None).
    """

    def __init__(
        self, dim: int, num_proxies: int = 100, rank: int = 2, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        validate.positive_int("model.embedding_dim", dim)
        validate.non_negative_int("method.num_proxies", num_proxies)
        validate.positive_int("method.rank", rank)
        if rank > dim:
            raise ConfigError(f"config key 'method.rank': must be <= the embedding size ({dim}), got {rank!r}")
        locations = F.normalize(torch.randn(num_proxies, dim, generator=generator), dim=-1)
        self.locations = nn.Parameter(locations)
        self.raw_bases = nn.Parameter(torch.randn(num_proxies, dim, rank, generator=generator))

    @property
    def num_proxies(self) -> int:
        return self.locations.shape[0]

    @property
    def rank(self) -> int:
        return self.raw_bases.shape[-1]

    def bases(self) -> torch.Tensor:
        """(N, d, r) orthonormal bases: the Q of the QR decomposition of each raw basis whose R has a positive
        diagonal (Gram–Schmidt, :func:`orthonormal_columns`): unique, deterministic and continuous wherever the
        raw basis has full rank; differentiable."""
        return orthonormal_columns(self.raw_bases.to(compute_dtype(self.raw_bases)))

    def similarity_to(
        self, x: torch.Tensor, n_alpha: float = 3.0, n_beta: float = 0.5, distance_scale: str = "mean"
    ) -> torch.Tensor:
        """(n_x, N) PL similarity s'(x_i, ρ_k) of points ``x`` (n_x, d) to the proxies.

        o, p are measured w.r.t. the proxy's piece (through its location, which is also the anchor).
        [decision] one-sided: the point's own piece is not used (a proxy is not part of the batch's PL model,
        and the slides compute the proxy–point quantities "with the proxy's linear neighbourhood"); with
        ``distance_scale="mean"`` o and p are divided by their means over all point–proxy pairs of the call.
        Differentiable in the proxies and ``x``; the proxy loss detaches it.
        """
        locations = self.locations.to(compute_dtype(x))
        o, p = orthogonal_and_inplane(x, locations, locations, self.bases())
        return pl_similarity(o, p, n_alpha, n_beta, distance_scale)
