"""The PL similarity of points from their orthogonal and in-plane distances (slide 9; methods.md §3(c)).

    s'(x_i, x_j) = α·β,   α = 1 / (1 + o(x_i, x_j)/2)^{N_α},   β = 1 / (1 + p(x_i, x_j))^{N_β}

with o, p measured w.r.t. x_j's piece P_j (:func:`~dmlkit.methods.pl_manifold.piecewise_linear.orthogonal_and_inplane`),
so s' is asymmetric. ``o`` is halved inside α, ``p`` is not (exact slide form, methods.md §3(g) 4). N_α > N_β makes
the similarity fall faster off the piece than along it.
"""

from __future__ import annotations

import torch

from dmlkit.losses import validate
from dmlkit.methods.pl_manifold.piecewise_linear import LinearPieces, compute_dtype, orthogonal_and_inplane

DISTANCE_SCALES = ("mean", "none")


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values`` over ``mask`` (all entries if None), clamped away from 0; 1 if nothing is selected."""
    selected = values if mask is None else values[mask]
    if selected.numel() == 0:
        return values.new_ones(())
    return selected.mean().clamp_min(torch.finfo(values.dtype).tiny)


def pl_similarity(
    o: torch.Tensor,
    p: torch.Tensor,
    n_alpha: float = 3.0,
    n_beta: float = 0.5,
    distance_scale: str = "mean",
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The one-sided PL similarity s' = α·β in (0, 1] from orthogonal (``o``) and in-plane (``p``) distances.

    [decision] methods.md §3(c) "normalised to (0,1)": with ``distance_scale="mean"`` o and p are each divided by
    their mean over the entries selected by ``mask`` (all entries when None; pass the off-diagonal mask for a
    pairwise matrix, so the zero self-distances do not shrink the mean) before α, β are applied; this makes
    the similarity independent of the embedding scale. ``"none"`` uses the raw distances.

    Args:
        o: Orthogonal distances, any shape, >= 0.
        p: In-plane distances, same shape, >= 0.
        n_alpha: N_α, decay off the piece (3, slide 16).
        n_beta: N_β, decay along the piece (0.5, slide 16; 0 switches it off).
        distance_scale: ``"mean"`` or ``"none"``.
        mask: Bool mask (shape of ``o``) of the entries the means are taken over.

    Returns:
        s', the shape of ``o``, fp32 (fp64 stays fp64).

    Example:
        >>> s = pl_similarity(torch.tensor([2.0]), torch.tensor([3.0]), n_alpha=1.0, n_beta=0.5, distance_scale="none")
        >>> s.item()  # 1/(1 + 1) · 1/sqrt(1 + 3)
        0.25
    """
    validate.at_least("method.n_alpha", n_alpha, 0.0)
    validate.at_least("method.n_beta", n_beta, 0.0)
    validate.choice("method.distance_scale", distance_scale, DISTANCE_SCALES)
    if o.shape != p.shape or (mask is not None and mask.shape != o.shape):
        shapes = (tuple(o.shape), tuple(p.shape), None if mask is None else tuple(mask.shape))
        raise ValueError(f"o, p (and mask) must have one shape; got {shapes}")
    dtype = compute_dtype(o)
    o, p = o.to(dtype), p.to(dtype)
    if distance_scale == "mean":
        o, p = o / _masked_mean(o, mask), p / _masked_mean(p, mask)
    return (1.0 + o / 2.0).pow(-n_alpha) * (1.0 + p).pow(-n_beta)


def symmetric_similarity(s_prime: torch.Tensor, rescale: bool = False) -> torch.Tensor:
    """``½(s' + s'ᵀ)`` with the diagonal set to 1 ([decision] methods.md §3(c)).

    Args:
        s_prime: (n, n) one-sided similarity, row i = point i, column j = piece of point j.
        rescale: Min-max rescale the off-diagonal entries to [0, 1] (the spec's flag); left as they are when
            they are all equal.
    """
    if s_prime.ndim != 2 or s_prime.shape[0] != s_prime.shape[1]:
        raise ValueError(f"a square (n, n) similarity expected, got {tuple(s_prime.shape)}")
    validate.flag("method.rescale", rescale)
    s = 0.5 * (s_prime + s_prime.T)
    off = ~torch.eye(len(s), dtype=torch.bool, device=s.device)
    if rescale and off.any():
        low, high = s[off].min(), s[off].max()
        if bool(high > low):
            s = (s - low) / (high - low)
    return s.masked_fill(~off, 1.0)


def binary_similarity(members: torch.Tensor) -> torch.Tensor:
    """1 where j is in i's neighbourhood or i in j's, else 0; diagonal 1 (the slides' "binary similarity" ablation).

    Args:
        members: (n, n) bool neighbourhood mask (:attr:`LinearPieces.members`).

    Returns:
        (n, n) fp32 similarity.
    """
    if members.ndim != 2 or members.shape[0] != members.shape[1]:
        raise ValueError(f"a square (n, n) membership mask expected, got {tuple(members.shape)}")
    members = members.bool()
    s = (members | members.T).float()
    return s.fill_diagonal_(1.0)


def data_similarity(
    x: torch.Tensor,
    pieces: LinearPieces,
    n_alpha: float = 3.0,
    n_beta: float = 0.5,
    distance_scale: str = "mean",
    binary: bool = False,
    rescale: bool = False,
) -> torch.Tensor:
    """The symmetric (n, n) PL similarity of the batch points ``x`` (n, d) under their own ``pieces``.

    o, p of every pair are measured w.r.t. the other point's piece with that point as anchor; the means of
    ``distance_scale="mean"`` are taken over the off-diagonal pairs. ``binary=True`` gives :func:`binary_similarity`
    of the neighbourhoods instead (ablation, methods.md §3(g) 2). See :func:`pl_similarity` for the rest.
    """
    validate.flag("method.binary", binary)
    if binary:
        return binary_similarity(pieces.members).to(compute_dtype(x))
    o, p = orthogonal_and_inplane(x, x, pieces.centres, pieces.bases)
    off = ~torch.eye(len(x), dtype=torch.bool, device=x.device)
    return symmetric_similarity(pl_similarity(o, p, n_alpha, n_beta, distance_scale, mask=off), rescale)
