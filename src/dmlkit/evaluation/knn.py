"""Exact k-nearest-neighbour search in bounded memory, with a documented tie rule.

Neighbours are ordered by ``(distance, gallery index)`` ascending: exact ties go to the
lower index. ``torch.topk`` (and faiss) do not say which of several tied candidates they
keep at the k-th place, so the search keeps ``k + 1`` candidates; rows whose k-th and
(k+1)-th distances are equal (a tie straddling the cut) are recomputed with a full stable
sort, and every row is finally ordered by ``(distance, index)``.

When the query set is the gallery (``gallery=None``) each query is excluded by index
(leave-one-out), so exact duplicates of a query still count as its neighbours.

Distances are squared Euclidean for ``euclidean`` and negated similarities for ``cosine``
and ``dot`` (smaller is nearer in every case); :func:`exact_knn` returns them as such.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Metric = Literal["euclidean", "cosine", "dot"]
Backend = Literal["auto", "torch", "faiss"]

#: Default memory budget of one distance block, in MiB.
BLOCK_BUDGET_MB = 256


def _prepare(x: torch.Tensor, metric: Metric) -> torch.Tensor:
    x = x.detach().float().contiguous()
    return F.normalize(x, dim=1) if metric == "cosine" else x


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def pairwise_distance(q: torch.Tensor, g: torch.Tensor, metric: Metric, g_sq: torch.Tensor | None = None):
    """Distances between prepared rows (squared L2, or negated similarity)."""
    if metric == "euclidean":
        g_sq = g.pow(2).sum(1) if g_sq is None else g_sq
        return (q.pow(2).sum(1, keepdim=True) + g_sq[None, :] - 2.0 * (q @ g.T)).clamp_min_(0)
    return -(q @ g.T)


def chunk_sizes(
    n_q: int, n_g: int, query_chunk: int | None, gallery_chunk: int | None, budget_mb: float = BLOCK_BUDGET_MB
) -> tuple[int, int]:
    """Query and gallery chunk sizes keeping a float32 block within ``budget_mb``."""
    entries = max(int(budget_mb * 2**20 / 4), 1)
    gc = gallery_chunk or min(max(n_g, 1), max(entries // 64, 1))
    qc = query_chunk or max(1, min(n_q, entries // gc))
    return max(qc, 1), max(gc, 1)


def _order_rows(dist: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort each row by (distance, index)."""
    by_index = torch.argsort(idx, dim=1, stable=True)
    dist, idx = dist.gather(1, by_index), idx.gather(1, by_index)
    by_dist = torch.argsort(dist, dim=1, stable=True)
    return dist.gather(1, by_dist), idx.gather(1, by_dist)


def _full_row(q: torch.Tensor, g: torch.Tensor, metric: Metric, self_index: int | None, k: int, gc: int):
    """Exact top-k of one query by a full stable sort (the tie fallback)."""
    d = torch.cat([pairwise_distance(q, g[s : s + gc], metric) for s in range(0, len(g), gc)], dim=1)[0]
    if self_index is not None:
        d[self_index] = float("inf")
    order = torch.argsort(d, stable=True)[:k]
    return d[order], order


def _torch_candidates(q_all, g, metric, k1, self_search, qc, gc, block_hook=None):
    n_q, device = len(q_all), q_all.device
    g_sq = g.pow(2).sum(1) if metric == "euclidean" else None
    out_d = torch.empty(n_q, k1, device=device)
    out_i = torch.empty(n_q, k1, dtype=torch.long, device=device)
    for qs in range(0, n_q, qc):
        q = q_all[qs : qs + qc]
        best_d = best_i = None
        for gs in range(0, len(g), gc):
            block = pairwise_distance(q, g[gs : gs + gc], metric, None if g_sq is None else g_sq[gs : gs + gc])
            if block_hook is not None:
                block_hook(block)
            if self_search:
                rows = torch.arange(len(q), device=device)
                cols = rows + qs - gs
                ok = (cols >= 0) & (cols < block.shape[1])
                block[rows[ok], cols[ok]] = float("inf")
            take = min(k1, block.shape[1])
            d, i = torch.topk(block, take, dim=1, largest=False, sorted=False)
            i += gs
            if best_d is not None:
                d, i = torch.cat([best_d, d], 1), torch.cat([best_i, i], 1)
                if d.shape[1] > k1:
                    d, pos = torch.topk(d, k1, dim=1, largest=False, sorted=False)
                    i = i.gather(1, pos)
            best_d, best_i = d, i
        out_d[qs : qs + qc], out_i[qs : qs + qc] = best_d, best_i
    return out_d, out_i


def _faiss_candidates(q, g, metric, k1, self_search):
    import faiss
    import numpy as np

    qn, gn = q.cpu().numpy(), g.cpu().numpy()
    extra = 1 if self_search else 0
    kk = min(k1 + extra, len(gn))
    if metric == "euclidean":
        d, i = faiss.knn(qn, gn, kk, metric=faiss.METRIC_L2)
    else:
        d, i = faiss.knn(qn, gn, kk, metric=faiss.METRIC_INNER_PRODUCT)
        d = -d
    d, i = torch.from_numpy(np.ascontiguousarray(d)), torch.from_numpy(np.ascontiguousarray(i)).long()
    if self_search:
        own = i == torch.arange(len(qn))[:, None]
        # drop the query itself (or, when it was not returned, the last candidate)
        drop = torch.where(own.any(1), own.float().argmax(1), torch.full((len(qn),), kk - 1))
        keep = torch.ones_like(own)
        keep[torch.arange(len(qn)), drop] = False
        d, i = d[keep].view(len(qn), kk - 1), i[keep].view(len(qn), kk - 1)
    return d.to(q.device), i.to(q.device)


def exact_knn(
    queries: torch.Tensor,
    gallery: torch.Tensor | None,
    k: int,
    metric: Metric = "euclidean",
    query_chunk: int | None = None,
    gallery_chunk: int | None = None,
    backend: Backend = "auto",
    memory_budget_mb: float = BLOCK_BUDGET_MB,
    block_hook=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest gallery items of every query, ordered by (distance, index).

    Args:
        queries: (n_q, d) embeddings.
        gallery: (n_g, d) embeddings, or ``None`` to search the queries themselves leaving each
            query out.
        k: Neighbours per query (at most the number of candidates).
        metric: ``euclidean`` (squared distances returned), ``cosine`` or ``dot`` (negated
            similarities returned).
        query_chunk, gallery_chunk: Block sizes; by default chosen so that one float32 distance
            block stays within ``memory_budget_mb``.
        backend: ``torch`` (any device), ``faiss`` (CPU, exact flat search) or ``auto`` (faiss
            for CPU tensors when it is installed, torch otherwise).
        block_hook: Called with every distance block (tests use it to check memory bounds).

    Returns:
        ``(distances, indices)``, each (n_q, k).
    """
    if metric not in ("euclidean", "cosine", "dot"):
        raise ValueError(f"metric must be euclidean, cosine or dot, got {metric!r}")
    self_search = gallery is None
    q = _prepare(queries, metric)
    g = q if self_search else _prepare(gallery, metric)
    n_candidates = len(g) - (1 if self_search else 0)
    if not 1 <= k <= n_candidates:
        raise ValueError(f"k={k} must be between 1 and the number of candidates ({n_candidates})")
    k1 = min(k + 1, n_candidates)
    qc, gc = chunk_sizes(len(q), len(g), query_chunk, gallery_chunk, memory_budget_mb)
    if backend == "auto":
        backend = "faiss" if q.device.type == "cpu" and faiss_available() and block_hook is None else "torch"
    if backend == "faiss":
        d, i = _faiss_candidates(q, g, metric, k1, self_search)
    elif backend == "torch":
        d, i = _torch_candidates(q, g, metric, k1, self_search, qc, gc, block_hook)
    else:
        raise ValueError(f"backend must be auto, torch or faiss, got {backend!r}")
    d, i = _order_rows(d, i)
    if k1 > k:
        tied = torch.nonzero(d[:, k - 1] == d[:, k]).flatten().tolist()
        for r in tied:
            d[r, :k], i[r, :k] = _full_row(q[r : r + 1], g, metric, r if self_search else None, k, gc)
    return d[:, :k].contiguous(), i[:, :k].contiguous()
