"""The piecewise-linear (PL) model of a batch of teacher embeddings (methods.md §3(b), §3(c)).

Every embedding x_i gets a linear piece P_i = (centre c_i, orthonormal basis U_i of rank r): an affine
subspace fitted by PCA to a neighbourhood of x_i that is grown point by point while the points stay close
to the piece. Distances of points from pieces, split into the part orthogonal to the piece (``o``) and
the part inside it (``p``), feed the PL similarity (:mod:`dmlkit.methods.pl_manifold.similarity`).

Everything is computed in fp32 (fp64 stays fp64) with autocast off, batched over points.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dmlkit.errors import ConfigError
from dmlkit.losses import validate

#: Elements of the (rows, pieces, dim) residual tensor built at once by :func:`orthogonal_and_inplane`.
_CHUNK_ELEMENTS = 1 << 24
_EPS = 1e-12


def compute_dtype(tensor: torch.Tensor) -> torch.dtype:
    """fp64 for fp64 input, fp32 for everything else (fp16/bf16 inputs are upcast)."""
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32


def sqrt0(squared: torch.Tensor) -> torch.Tensor:
    """``sqrt`` of non-negative values whose gradient is 0 (not inf/NaN) where the value is 0."""
    positive = squared > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, squared, torch.ones_like(squared))), 0.0)


@dataclass
class LinearPieces:
    """One linear piece per point of a batch.

    Attributes:
        centres: (n, d) centre c_i of each piece (the mean of its members).
        bases: (n, d, r) orthonormal basis U_i of each piece (columns, by decreasing variance of the members).
        members: (n, n) bool; row i marks the points of i's neighbourhood (i included).
        sizes: (n,) int64 number of members of each piece.
    """

    centres: torch.Tensor
    bases: torch.Tensor
    members: torch.Tensor
    sizes: torch.Tensor

    @property
    def rank(self) -> int:
        return self.bases.shape[-1]


def orthonormal_columns(a: torch.Tensor) -> torch.Tensor:
    """Orthonormalise the columns of every (..., d, r) matrix by Gram–Schmidt, each projection done twice.

    Equal to the Q of a QR decomposition whose R has a positive diagonal: a unique, deterministic choice,
    continuous (and differentiable) wherever the columns are independent. A column that is numerically in the
    span of the previous ones (its remainder at most ``10·eps`` times the largest column norm; zero columns
    included) is replaced by the coordinate axis least covered by the previous columns, orthogonalised in turn,
    so the result is always orthonormal (needs r <= d). Batched over the leading dimensions; the loop runs
    over the r columns only.
    """
    d, r = a.shape[-2:]
    tol = 10 * torch.finfo(a.dtype).eps * torch.linalg.vector_norm(a, dim=-2).amax(-1, keepdim=True)  # (..., 1)

    def remove(v: torch.Tensor, columns: list[torch.Tensor]) -> torch.Tensor:
        for _ in range(2):  # "twice is enough" (Kahan–Parlett): orthogonal to working precision
            for q in columns:
                v = v - (q * v).sum(-1, keepdim=True) * q
        return v

    columns: list[torch.Tensor] = []
    for k in range(r):
        v = remove(a[..., k], columns)
        norm = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
        weak = norm <= tol
        coverage = sum((q * q for q in columns), torch.zeros_like(v))
        axis = F.one_hot(coverage.argmin(-1), d).to(a.dtype)
        axis = remove(axis, columns)
        axis = axis / torch.linalg.vector_norm(axis, dim=-1, keepdim=True)
        columns.append(torch.where(weak, axis, v / torch.where(weak, torch.ones_like(norm), norm)))
    return torch.stack(columns, -1)


def _fit(neighbours: torch.Tensor, count: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PCA of the first ``count[i]`` rows of every ``neighbours[i]`` (n, m, d) → centres (n, d), bases (n, d, r).

    Non-members are zeroed after centring, so they add nothing. The top right singular vectors of the centred
    members Y come from the small (m, m) Gram matrix Y Yᵀ = W Λ Wᵀ as the directions of Yᵀ W (batched
    ``eigh`` of m × m matrices instead of an SVD of m × d ones, which CUDA runs one matrix at a time), then
    :func:`orthonormal_columns`; when the members span fewer than r directions the extra columns are arbitrary
    but orthonormal.
    """
    m = neighbours.shape[1]
    mask = (torch.arange(m, device=neighbours.device)[None] < count[:, None]).to(neighbours.dtype)[..., None]
    centres = (neighbours * mask).sum(1) / count[:, None].to(neighbours.dtype)
    centred = (neighbours - centres[:, None]) * mask
    _, vectors = torch.linalg.eigh(centred @ centred.transpose(1, 2))  # ascending eigenvalues
    top = vectors[..., -min(rank, m) :].flip(-1)  # (n, m, k), largest first
    directions = centred.transpose(1, 2) @ top  # (n, d, k): the singular directions scaled by σ
    if directions.shape[-1] < rank:
        directions = F.pad(directions, (0, rank - directions.shape[-1]))
    return centres, orthonormal_columns(directions)


def normalised_residual(points: torch.Tensor, centres: torch.Tensor, bases: torch.Tensor) -> torch.Tensor:
    """‖(I − U Uᵀ)(x − c)‖ / (‖x − c‖ + tiny) in [0, 1] of each point (n, d) w.r.t. its own piece (n, d), (n, d, r).

    The sine of the angle between x − c and the piece; 0 for points on the piece (and for x = c).
    """
    v = points - centres
    return _residual(points, centres, bases) / (torch.linalg.vector_norm(v, dim=-1) + _EPS)


def _residual(points: torch.Tensor, centres: torch.Tensor, bases: torch.Tensor) -> torch.Tensor:
    """‖(I − U Uᵀ)(x − c)‖ of each point w.r.t. its own piece."""
    v = points - centres
    return torch.linalg.vector_norm(v - torch.einsum("ndr,nr->nd", bases, torch.einsum("ndr,nd->nr", bases, v)), dim=-1)


RESIDUAL_SCALES = ("centre", "local")


def fit_pieces(
    x: torch.Tensor,
    rank: int = 2,
    max_size: int = 10,
    threshold: float = 0.3,
    subset_selection: bool = True,
    residual_scale: str = "centre",
) -> LinearPieces:
    """Fit one linear piece to a grown neighbourhood of every point of ``x`` (n, d); no gradient.

    For every point i the other points are taken in order of Euclidean distance to x_i (i first, ties to
    the lower index). The neighbourhood starts with i and its ``rank`` nearest neighbours and is fitted by
    PCA (centre = mean, basis = top-``rank`` right singular vectors of the centred members). Then the next
    neighbour is tried: it joins (and the piece is refitted) while its normalised residual
    (:func:`normalised_residual`, the sine of its angle off the piece) is at most ``threshold``; growth of
    that piece stops for good at the first neighbour above it, which is left out. No piece exceeds
    ``max_size`` members (clamped to n).

    [decision] methods.md §3(c): the slides give no threshold, rank or size. Growth follows the teacher-space
    kNN order inside the batch, the error is the residual normalised by the distance to the centre (scale
    free, in [0, 1]), measured against the piece fitted *before* the candidate joins, and the first breach
    ends growth (no skipping to farther points).

    Args:
        x: (n, d) teacher embeddings of the batch; any float dtype (computed in fp32, fp64 stays fp64).
        rank: Dimension r of every piece (1…3 per methods.md; the slides' toy example uses 1).
        max_size: Largest neighbourhood, the point itself included; must exceed ``rank``.
        threshold: ε, the largest accepted normalised residual (0 accepts only points exactly on the piece,
            1 or more accepts every point).
        subset_selection: ``False`` gives every point its ``max_size`` nearest points (the slides' ablation
            "no subset selection", methods.md §3(g) 3).
        residual_scale: What the candidate's residual is divided by: ``centre``, its distance to the piece's
            centre (the sine above); ``local``, the mean distance of x_i to its ``max_size − 1`` nearest points
            (the neighbourhood's scale). [decision] In 64-d and more the sine is close to 1 for almost every
            candidate (measured: median 0.97 for rank 2 on a small CNN's Omniglot embedding), so no threshold
            below 1 lets a piece grow; ``local`` compares the off-piece distance with the local spacing.

    Returns:
        The pieces, on ``x``'s device in the compute dtype.
    """
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"embeddings (n, d) with n >= 1 expected, got {tuple(x.shape)}")
    validate.positive_int("method.rank", rank)
    if rank > x.shape[1]:
        raise ConfigError(f"config key 'method.rank': must be <= the embedding size ({x.shape[1]}), got {rank!r}")
    validate.positive_int("method.max_size", max_size)
    validate.greater_than("method.max_size", max_size, rank, "method.rank")
    validate.at_least("method.threshold", threshold, 0.0)
    validate.flag("method.subset_selection", subset_selection)
    validate.choice("method.residual_scale", residual_scale, RESIDUAL_SCALES)
    n = len(x)
    size = min(max_size, n)
    with torch.no_grad(), torch.autocast(device_type=x.device.type, enabled=False):
        x = x.detach().to(compute_dtype(x))
        dist = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist")
        dist.fill_diagonal_(-1.0)  # the point itself first, even among duplicates
        order = torch.argsort(dist, dim=1, stable=True)[:, :size]  # (n, size) kNN order
        neighbours = x[order]  # (n, size, d)
        if residual_scale == "local":
            local = dist.gather(1, order[:, 1:]).mean(1) if size > 1 else torch.ones(n, dtype=x.dtype)
        if subset_selection:
            start = min(rank + 1, size)
            count = torch.full((n,), start, dtype=torch.long, device=x.device)
            growing = torch.ones(n, dtype=torch.bool, device=x.device)
            for slot in range(start, size):
                centres, bases = _fit(neighbours, count, rank)
                candidate = neighbours[:, slot]
                if residual_scale == "local":
                    error = _residual(candidate, centres, bases) / (local + _EPS)
                else:
                    error = normalised_residual(candidate, centres, bases)
                accept = growing & (error <= threshold)
                count += accept.long()
                growing = accept
                if not bool(growing.any()):
                    break
        else:
            count = torch.full((n,), size, dtype=torch.long, device=x.device)
        centres, bases = _fit(neighbours, count, rank)
        in_piece = torch.arange(size, device=x.device)[None] < count[:, None]
        members = torch.zeros(n, n, dtype=torch.bool, device=x.device).scatter_(1, order, in_piece)
    return LinearPieces(centres, bases, members, count)


def orthogonal_and_inplane(
    x: torch.Tensor, anchors: torch.Tensor, centres: torch.Tensor, bases: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthogonal and in-plane distances of points from pieces (slide 9; methods.md §3(c)).

    With v_ij = x_i − c_j and its projection π_ij = c_j + U_j U_jᵀ v_ij onto the piece P_j:

    * ``o[i, j] = ‖v_ij − U_j U_jᵀ v_ij‖``, the distance of x_i from P_j;
    * ``p[i, j] = ‖π_ij − a_j‖``, the distance inside (and, if a_j is off the piece, towards) P_j between the
      projection and the piece's anchor a_j: the data point x_j for a data piece, the proxy location for a
      proxy.

    The residual is formed explicitly (no ‖v‖² − ‖U_jᵀv‖² cancellation), in chunks of rows of ``x`` to bound
    memory; differentiable, with zero (not NaN) gradients where a distance is 0.

    Args:
        x: (n_x, d) points.
        anchors: (P, d) anchor of every piece.
        centres: (P, d) centre of every piece.
        bases: (P, d, r) orthonormal basis of every piece.

    Returns:
        ``(o, p)``, both (n_x, P), fp32 (fp64 if ``x`` is fp64).

    Example:
        >>> o, p = orthogonal_and_inplane(
        ...     torch.tensor([[3.0, 4.0]]), torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([[[1.0], [0.0]]])
        ... )
        >>> o.item(), p.item()  # the x-axis through the origin: 4 off it, 3 along it
        (4.0, 3.0)
    """
    n_pieces, d = centres.shape
    if x.ndim != 2 or x.shape[1] != d or anchors.shape != (n_pieces, d) or bases.shape[:2] != (n_pieces, d):
        raise ValueError(
            f"x (n, d), anchors (P, d), centres (P, d) and bases (P, d, r) expected; got {tuple(x.shape)}, "
            f"{tuple(anchors.shape)}, {tuple(centres.shape)}, {tuple(bases.shape)}"
        )
    dtype = compute_dtype(x)
    with torch.autocast(device_type=x.device.type, enabled=False):
        x, anchors, centres, bases = (t.to(dtype) for t in (x, anchors, centres, bases))
        offset = anchors - centres  # a_j − c_j = U_j b_j + w_j
        b = torch.einsum("pdr,pd->pr", bases, offset)
        off_piece = (offset - torch.einsum("pdr,pr->pd", bases, b)).pow(2).sum(-1)  # ‖w_j‖²
        rows = max(1, _CHUNK_ELEMENTS // max(1, n_pieces * d))
        o_parts, p_parts = [], []
        for start in range(0, len(x), rows):
            v = x[start : start + rows, None] - centres[None]  # (rows, P, d)
            coef = torch.einsum("ipd,pdr->ipr", v, bases)
            residual = v - torch.einsum("ipr,pdr->ipd", coef, bases)
            o_parts.append(sqrt0(residual.pow(2).sum(-1)))
            p_parts.append(sqrt0((coef - b[None]).pow(2).sum(-1) + off_piece[None]))
        if not o_parts:
            empty = x.new_zeros(0, n_pieces)
            return empty, empty.clone()
    return torch.cat(o_parts), torch.cat(p_parts)
