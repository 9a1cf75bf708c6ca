"""The three PL-manifold losses, ``L = L_point + L_proxy + L_neighbourhood`` (slide 11; methods.md §3(c)).

``L_point`` and ``L_proxy`` train the student (similarities from the teacher PL model and the proxies are
constants there); ``L_neighbourhood`` trains the proxies only. The weights between the three terms are the
caller's ([decision] 1:1:1 as written on the slide). Computed in fp32 (fp64 stays fp64) with autocast off.
"""

from __future__ import annotations

import torch

from dmlkit.losses import validate
from dmlkit.methods.pl_manifold.piecewise_linear import compute_dtype
from dmlkit.methods.pl_manifold.proxies import ProxyManifold

_EPS = 1e-12


def pairwise_distance(a: torch.Tensor, b: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    """(n, m) Euclidean distances of the rows of ``a`` (n, d) and ``b`` (m, d).

    ``sqrt(max(‖a_i‖² + ‖b_j‖² − 2 a_i·b_j, eps))``: the clamp keeps gradients finite (zero) for identical
    points, at the price of a floor of sqrt(eps) = 1e-6 on the distance.
    """
    squared = a.pow(2).sum(1)[:, None] + b.pow(2).sum(1)[None] - 2.0 * a @ b.T
    return squared.clamp_min(eps).sqrt()


def _squared_error(distance: torch.Tensor, similarity: torch.Tensor, delta: float) -> torch.Tensor:
    return (delta * (1.0 - similarity) - distance).pow(2)


def point_loss(student: torch.Tensor, similarity: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """``mean_{i≠j} (δ·(1 − s_ij) − ‖f_i − f_j‖₂)²`` of student embeddings (n, d) and teacher similarity (n, n).

    The similarity is detached (methods.md §3(g) 1). 0 (still attached to ``student``) for fewer than two
    points.

    Args:
        student: (n, d) student embeddings f_θ(x_i).
        similarity: (n, n) symmetric PL similarity of the batch.
        delta: δ, the distance of fully dissimilar points ([UNVERIFIED]; 1 as STML for normalised embeddings).
    """
    validate.positive("method.delta", delta)
    n = len(student)
    if student.ndim != 2 or similarity.shape != (n, n):
        raise ValueError(
            f"student (n, d) and similarity (n, n) expected; got {tuple(student.shape)}, {tuple(similarity.shape)}"
        )
    dtype = compute_dtype(student)
    with torch.autocast(device_type=student.device.type, enabled=False):
        f = student.to(dtype)
        if n < 2:
            return f.sum() * 0.0
        error = _squared_error(pairwise_distance(f, f), similarity.detach().to(dtype), delta)
        off = ~torch.eye(n, dtype=torch.bool, device=f.device)
        return error[off].mean()


def proxy_loss(
    student: torch.Tensor, proxy_locations: torch.Tensor, similarity: torch.Tensor, delta: float = 1.0
) -> torch.Tensor:
    """``mean_{i,k} (δ·(1 − s(x_i, ρ_k)) − ‖f_i − ρ_k‖₂)²`` over all points and proxies.

    Proxies and similarity are detached: [decision] methods.md §3(c), this term updates the embedding network
    only; the proxies learn from :func:`neighbourhood_loss`. 0 (attached to ``student``) without proxies.

    Args:
        student: (n, d) student embeddings.
        proxy_locations: (N, d) proxy locations ρ_k.
        similarity: (n, N) point–proxy similarity (:meth:`ProxyManifold.similarity_to` of the teacher
            embeddings).
        delta: δ, as in :func:`point_loss`.
    """
    validate.positive("method.delta", delta)
    n, n_proxies = len(student), len(proxy_locations)
    if student.ndim != 2 or proxy_locations.ndim != 2 or similarity.shape != (n, n_proxies):
        raise ValueError(
            f"student (n, d), proxy_locations (N, d) and similarity (n, N) expected; got {tuple(student.shape)}, "
            f"{tuple(proxy_locations.shape)}, {tuple(similarity.shape)}"
        )
    dtype = compute_dtype(student)
    with torch.autocast(device_type=student.device.type, enabled=False):
        f = student.to(dtype)
        if n == 0 or n_proxies == 0:
            return f.sum() * 0.0
        distance = pairwise_distance(f, proxy_locations.detach().to(dtype))
        return _squared_error(distance, similarity.detach().to(dtype), delta).mean()


def neighbourhood_loss(
    teacher_x: torch.Tensor, proxies: ProxyManifold, similarity: torch.Tensor, top_k: int = 5
) -> torch.Tensor:
    """Pull every proxy's location and piece towards its ``top_k`` most similar batch points.

    [decision] methods.md §3(c) ``L_neighborhood``: for proxy k and each of its top-k points x (by the
    detached point–proxy ``similarity``; fewer when the batch is smaller), with v = x − ρ_k and U_k the proxy's
    basis, the loss is ``mean_k mean_x (‖v‖² + ‖v − U_k U_kᵀ v‖²)``: squared distance to the location plus
    squared orthogonal residual off the proxy's piece (through its location). Points are detached: the
    gradient reaches the proxies only. 0 (attached to the proxies) without proxies or points.

    Args:
        teacher_x: (n, d) teacher embeddings of the batch.
        proxies: The proxy manifold.
        similarity: (n, N) point–proxy similarity.
        top_k: Points per proxy (5 = the STML neighbourhood size; not given by the slides).
    """
    validate.positive_int("method.top_k", top_k)
    n, n_proxies = len(teacher_x), proxies.num_proxies
    if teacher_x.ndim != 2 or similarity.shape != (n, n_proxies):
        raise ValueError(
            f"teacher_x (n, d) and similarity (n, N={n_proxies}) expected; got {tuple(teacher_x.shape)}, "
            f"{tuple(similarity.shape)}"
        )
    dtype = compute_dtype(teacher_x)
    with torch.autocast(device_type=teacher_x.device.type, enabled=False):
        locations, bases = proxies.locations.to(dtype), proxies.bases().to(dtype)
        if n == 0 or n_proxies == 0:
            return locations.sum() * 0.0 + bases.sum() * 0.0
        k = min(top_k, n)
        nearest = similarity.detach().topk(k, dim=0).indices.T  # (N, k)
        v = teacher_x.detach().to(dtype)[nearest] - locations[:, None]  # (N, k, d)
        coef = torch.einsum("nkd,ndr->nkr", v, bases)
        residual = v - torch.einsum("nkr,ndr->nkd", coef, bases)
        return (v.pow(2).sum(-1) + residual.pow(2).sum(-1)).mean()
