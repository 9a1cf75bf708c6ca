"""Exact k-nearest-neighbour search in bounded memory, with a documented tie rule.

Decisions (see ``methods.md``, evaluation protocol):

* **Order and ties.** Neighbours are ordered by ``(distance, gallery index)`` ascending, so an exact
  tie goes to the lower gallery index. ``torch.topk`` and faiss do not say which of several tied
  candidates they keep at the k-th place, so the search keeps ``k + 1`` candidates per query; a query
  whose k-th and (k+1)-th distances are equal (a tie straddling the cut) is searched again exactly,
  with a chunked selection on unique ``(distance, index)`` keys (the same result as a full stable
  sort, in bounded memory); every row is finally sorted by ``(distance, index)``. "Equal" means equal
  computed float32 values.
* **Distances returned** are the values the ranking used: *squared* Euclidean distances for
  ``euclidean`` (``‖q‖² + ‖g‖² − 2 q·g``, clamped at 0), and *negated* similarities ``−q·g`` for
  ``cosine`` (rows L2-normalised first) and ``dot``. Smaller is nearer for every metric. Squared
  (not square-rooted) values are returned because a square root can merge distinct float32 values
  and so break the documented order on the returned numbers; take ``sqrt`` for display.
* **Leave-one-out.** With ``gallery=None`` the queries search themselves and each query is
  excluded *by index*, so exact duplicates of a query still count as its neighbours.
* **Memory.** Distances are computed in blocks of ``query_chunk × gallery_chunk`` entries (never
  the full matrix) and merged into running top-(k+1) lists. When the queries are the gallery, each
  off-diagonal block serves its rows and its columns (the distance matrix is symmetric), halving
  the matrix products.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

Metric = Literal["euclidean", "cosine", "dot"]
Backend = Literal["auto", "torch", "faiss"]
BlockHook = Callable[[torch.Tensor], None]

METRICS = ("euclidean", "cosine", "dot")
BACKENDS = ("auto", "torch", "faiss")

#: Default memory budget of one distance block (with its comparison mask), in MiB.
DEFAULT_MEMORY_BUDGET_MB = 256.0
#: Bytes per block entry: float32 distance, float32 threshold and a one-byte candidate mask.
_BYTES_PER_ENTRY = 9
#: Largest side of an automatic block (larger ones were not faster on a 2-core CPU; fewer, larger
#: blocks mean fewer small operations).
MAX_AUTO_TILE = 4096
#: A block with more candidates than this fraction of its entries is merged with ``topk`` instead.
_SPARSE_FRACTION = 1 / 16
#: Queued sparse candidates are merged once they exceed this many per list of a block (times k+1).
_QUEUE_FACTOR = 4

_INF = float("inf")


def faiss_available() -> bool:
    """Whether ``faiss`` can be imported."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _prepare(x: torch.Tensor, metric: Metric, name: str) -> torch.Tensor:
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n, dim) tensor, got shape {tuple(x.shape)}")
    x = x.detach().to(torch.float32).contiguous()
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return F.normalize(x, dim=1) if metric == "cosine" else x


def chunk_sizes(
    n_q: int,
    n_g: int,
    query_chunk: int | None = None,
    gallery_chunk: int | None = None,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    square: bool = False,
) -> tuple[int, int]:
    """Block sizes ``(query_chunk, gallery_chunk)``; explicit sizes are kept as given.

    Automatic sizes keep one block within ``memory_budget_mb`` (9 bytes per entry: float32 distance,
    float32 threshold and a mask byte) and each side within :data:`MAX_AUTO_TILE`. With ``square=True``
    (query is gallery) one given size is used for both sides, so that blocks can be reused symmetrically.
    """
    for name, value in (("query_chunk", query_chunk), ("gallery_chunk", gallery_chunk)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    entries = max(int(memory_budget_mb * 2**20) // _BYTES_PER_ENTRY, 1)
    tile = max(1, min(MAX_AUTO_TILE, math.isqrt(entries)))
    if square and (query_chunk is None) != (gallery_chunk is None):
        query_chunk = gallery_chunk = query_chunk or gallery_chunk
    if square and query_chunk is None:
        return min(n_q, tile), min(n_q, tile)
    if gallery_chunk is None:
        gallery_chunk = max(1, min(n_g, MAX_AUTO_TILE, entries // (query_chunk or min(n_q, tile))))
    if query_chunk is None:
        query_chunk = max(1, min(n_q, MAX_AUTO_TILE, entries // gallery_chunk))
    return query_chunk, gallery_chunk


# ----------------------------------------------------------------------------- keys and ordering
def _float_bits(x: torch.Tensor) -> torch.Tensor:
    """int32 values ordered like the float32 values ``x`` (−0.0 counts as +0.0)."""
    bits = (x + 0.0).view(torch.int32)
    return torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


def _order_keys(dist: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Unique int64 keys ordered like ``(dist, idx)``: the distance's ordered bits, then the index.

    ``idx`` must lie in ``[0, 2**32)``.
    """
    return _float_bits(dist).to(torch.int64) * (1 << 32) + idx


def _decode_keys(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    bits = (keys >> 32).to(torch.int32)
    bits = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    return bits.view(torch.float32), keys & 0xFFFFFFFF


def _sort_rows(dist: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort each row by ``(distance, index)``."""
    return _decode_keys(torch.sort(_order_keys(dist, idx), dim=1).values)


# ----------------------------------------------------------------------------- distance blocks
class _Operands:
    """Prepared operands whose product is the distance block: ``block = left[rows] @ right[cols].T``.

    Euclidean: ``[−2q, ‖q‖², 1] · [g, 1, ‖g‖²] = ‖q‖² + ‖g‖² − 2 q·g`` (norms folded into the product,
    no extra pass over the block); cosine and dot: ``(−q) · g``. Scaling by −2 and negation are exact.
    """

    def __init__(self, q: torch.Tensor, g: torch.Tensor, metric: Metric):
        self.euclidean = metric == "euclidean"
        if self.euclidean:
            q_sq, g_sq = q.pow(2).sum(1, keepdim=True), g.pow(2).sum(1, keepdim=True)
            self.left = torch.cat([q * -2.0, q_sq, torch.ones_like(q_sq)], dim=1)
            self.right = torch.cat([g, torch.ones_like(g_sq), g_sq], dim=1)
        else:
            self.left, self.right = -q, g
        self.n_g = len(g)

    def block(self, left: torch.Tensor, cols: slice, out: torch.Tensor) -> torch.Tensor:
        return torch.mm(left, self.right[cols].T, out=out)

    def finish(self, dist: torch.Tensor) -> torch.Tensor:
        """Returned values: squared distances are clamped at 0 (a monotone map, order kept)."""
        return dist.clamp_min(0.0) if self.euclidean else dist


class _Pools:
    """Flat buffers reused by every block: distances, per-entry thresholds and the candidate mask."""

    def __init__(self, entries: int, device: torch.device, thresholds: bool):
        self.dist = torch.empty(entries, device=device)
        self.thr = torch.empty(entries if thresholds else 0, device=device)
        self.mask = torch.empty(entries, dtype=torch.bool, device=device)

    @staticmethod
    def view(pool: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        """A contiguous view of ``shape`` at the start of a flat pool."""
        return pool[: shape[0] * shape[1]].view(shape)


class _Lists:
    """Running top-(k+1) lists (unordered) of ``n`` queries, with a queue of pending sparse candidates.

    Merging is order-independent (each list ends as the k+1 smallest values offered to it), so
    candidates can wait in the queue; flushing them in batches keeps the number of small
    operations per block low.
    """

    def __init__(self, n: int, k1: int, device: torch.device, queue_limit: int):
        self.d = torch.full((n, k1), _INF, device=device)
        self.i = torch.full((n, k1), -1, dtype=torch.int64, device=device)
        self.k1 = k1
        self.queue: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.queued = 0
        self.queue_limit = queue_limit

    def thresholds(self, rows) -> torch.Tensor:
        """The current (k+1)-th distance of each list: only smaller values can still enter it."""
        return self.d[rows].amax(dim=1)

    def merge(self, rows, cand_d: torch.Tensor, cand_i: torch.Tensor) -> None:
        """Merge a candidate matrix (one row per list in ``rows``)."""
        d = torch.cat([self.d[rows], cand_d], dim=1)
        i = torch.cat([self.i[rows], cand_i], dim=1)
        d, pos = torch.topk(d, self.k1, dim=1, largest=False, sorted=False)
        self.d[rows] = d
        self.i[rows] = i.gather(1, pos)

    def merge_dense(self, rows: slice, block: torch.Tensor, col_offset: int) -> None:
        """Merge every row of ``block`` (gallery indices ``col_offset + column``) through ``topk``."""
        d, i = torch.topk(block, min(self.k1, block.shape[1]), dim=1, largest=False, sorted=False)
        self.merge(rows, d, i + col_offset)

    def push(self, targets: torch.Tensor, idx: torch.Tensor, vals: torch.Tensor) -> None:
        """Queue scattered candidates ``(list, gallery index, distance)``."""
        if len(targets):
            self.queue.append((targets, idx, vals))
            self.queued += len(targets)
            if self.queued > self.queue_limit:
                self.flush()

    def flush(self) -> None:
        """Merge the queued candidates: group by list, keep each list's k+1 smallest, then merge."""
        if not self.queue:
            return
        targets, idx, vals = (torch.cat(parts) for parts in zip(*self.queue, strict=True))
        self.queue, self.queued = [], 0
        order = torch.argsort(targets * (1 << 32) + (_float_bits(vals).to(torch.int64) + (1 << 31)))
        targets, idx, vals = targets[order], idx[order], vals[order]  # by list, then by distance
        lists, counts = torch.unique_consecutive(targets, return_counts=True)
        slot = torch.repeat_interleave(torch.arange(len(lists), device=targets.device), counts)
        rank = torch.arange(len(targets), device=targets.device) - (counts.cumsum(0) - counts)[slot]
        keep = rank < self.k1
        width = min(self.k1, int(counts.max()))
        cand_d = torch.full((len(lists), width), _INF, device=vals.device)
        cand_i = torch.full((len(lists), width), -1, dtype=torch.int64, device=vals.device)
        cand_d[slot[keep], rank[keep]] = vals[keep]
        cand_i[slot[keep], rank[keep]] = idx[keep]
        self.merge(lists, cand_d, cand_i)


def _nonzero(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices of the True entries of a sparse contiguous mask, in row-major order.

    Scans 8 mask bytes at a time (as int64 words) and expands only the non-zero words.
    """
    n_rows, n_cols = mask.shape
    if n_cols % 8:
        return mask.nonzero().unbind(1)
    word_r, word_c = mask.view(torch.int64).nonzero().unbind(1)
    byte_j, byte_b = mask.view(n_rows, n_cols // 8, 8)[word_r, word_c].nonzero().unbind(1)
    return word_r[byte_j], word_c[byte_j] * 8 + byte_b


def _merge_block(
    lists: _Lists, block: torch.Tensor, rows: slice, col_offset: int, cols: slice | None, pools: _Pools
) -> None:
    """Offer a distance block to the running lists.

    Its rows go to the lists ``rows`` (gallery indices ``col_offset + column``); with ``cols``
    (symmetric search) its columns also go to the lists ``cols`` (gallery indices ``rows.start + row``).
    Only entries below a list's current (k+1)-th distance can enter it; once the lists hold real
    candidates these are few, so they are gathered sparsely instead of running ``topk`` over the
    block. Leaving out entries *equal* to that distance keeps the multiset of the k+1 smallest values.
    """
    thr_r = lists.thresholds(rows)
    mask = pools.view(pools.mask, block.shape)
    if cols is None:
        torch.lt(block, thr_r[:, None], out=mask)
    else:
        thr_c = lists.thresholds(cols)
        torch.lt(block, torch.maximum(thr_r[:, None], thr_c[None, :], out=pools.view(pools.thr, block.shape)), out=mask)
    n_cand = int(torch.count_nonzero(mask))
    if n_cand > _SPARSE_FRACTION * block.numel():
        lists.merge_dense(rows, block, col_offset)
        if cols is not None:
            lists.merge_dense(cols, block.T, rows.start)
        return
    if n_cand == 0:
        return
    r, c = _nonzero(mask)
    vals = block[r, c]
    keep = vals < thr_r[r]
    lists.push(r[keep] + rows.start, c[keep] + col_offset, vals[keep])
    if cols is not None:
        keep = vals < thr_c[c]
        lists.push(c[keep] + cols.start, r[keep] + rows.start, vals[keep])


def _search_symmetric(ops: _Operands, k1: int, tile: int, hook: BlockHook | None):
    """Query-is-gallery search: the diagonal blocks first (so every list holds real candidates),
    then each upper off-diagonal block once, offered to its rows and to its columns."""
    n, device = ops.n_g, ops.left.device
    lists = _Lists(n, k1, device, queue_limit=_QUEUE_FACTOR * tile * k1)
    pools = _Pools(min(tile, n) ** 2, device, thresholds=True)
    starts = range(0, n, tile)
    pairs = [(s, s) for s in starts] + [(s, t) for s in starts for t in starts if t > s]
    for s, t in pairs:
        rows, cols = slice(s, min(s + tile, n)), slice(t, min(t + tile, n))
        block = ops.block(ops.left[rows], cols, pools.view(pools.dist, (rows.stop - s, cols.stop - t)))
        if hook is not None:
            hook(block)
        if s == t:
            block.diagonal().fill_(_INF)
        _merge_block(lists, block, rows, t, None if s == t else cols, pools)
        if cols.stop == n:  # end of a block row: tighten the thresholds
            lists.flush()
    return ops.finish(lists.d), lists.i


def _search_rows(ops: _Operands, n_q: int, k1: int, self_search: bool, qc: int, gc: int, hook: BlockHook | None):
    """Query blocks against gallery blocks, one running top-(k+1) list per query."""
    n_g, device = ops.n_g, ops.left.device
    out_d = torch.empty(n_q, k1, device=device)
    out_i = torch.empty(n_q, k1, dtype=torch.int64, device=device)
    pools = _Pools(min(qc, n_q) * min(gc, n_g), device, thresholds=False)
    for s in range(0, n_q, qc):
        rows = slice(s, min(s + qc, n_q))
        nr = rows.stop - s
        lists = _Lists(nr, k1, device, queue_limit=_QUEUE_FACTOR * nr * k1)
        for t in range(0, n_g, gc):
            cols = slice(t, min(t + gc, n_g))
            block = ops.block(ops.left[rows], cols, pools.view(pools.dist, (nr, cols.stop - t)))
            if hook is not None:
                hook(block)
            if self_search and s < cols.stop and t < rows.stop:  # the block holds (i, i) entries
                own = torch.arange(max(s, t), min(rows.stop, cols.stop), device=device)
                block[own - s, own - t] = _INF
            _merge_block(lists, block, slice(0, nr), t, None, pools)
        lists.flush()
        out_d[rows], out_i[rows] = ops.finish(lists.d), lists.i
    return out_d, out_i


def _search_faiss(q: torch.Tensor, g: torch.Tensor, metric: Metric, k1: int, self_search: bool):
    """Exact flat faiss search (CPU, float32); faiss blocks its own computation in bounded memory."""
    import faiss

    xq = q.cpu().numpy()
    xb = xq if self_search else g.cpu().numpy()
    kk = k1 + 1 if self_search else k1  # one more: the query itself is usually among them
    faiss_metric = faiss.METRIC_L2 if metric == "euclidean" else faiss.METRIC_INNER_PRODUCT
    dist, idx = faiss.knn(xq, xb, kk, metric=faiss_metric)
    d = torch.from_numpy(dist)
    i = torch.from_numpy(idx).to(torch.int64)
    d = d.clamp_min(0.0) if metric == "euclidean" else -d
    if self_search:
        own = i == torch.arange(len(xq))[:, None]
        # drop the query itself, or the last (largest) candidate when the query was not returned
        drop = torch.where(own.any(1), own.to(torch.int8).argmax(1), kk - 1)
        keep = torch.ones_like(own)
        keep[torch.arange(len(xq)), drop] = False
        d, i = d[keep].view(len(xq), k1), i[keep].view(len(xq), k1)
    return d.to(q.device), i.to(q.device)


def _exact_rows(
    ops: _Operands, row_ids: torch.Tensor, k: int, self_search: bool, gc: int, budget_entries: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k of the given query rows by unique ``(distance, index)`` keys, chunked.

    The same result as a full stable sort of each row by (distance, index), in bounded memory.
    """
    n_g, device = ops.n_g, ops.left.device
    gc = min(gc, n_g)
    rows_per_chunk = max(1, budget_entries // gc)
    out_d = torch.empty(len(row_ids), k, device=device)
    out_i = torch.empty(len(row_ids), k, dtype=torch.int64, device=device)
    never = torch.iinfo(torch.int64).max
    for s in range(0, len(row_ids), rows_per_chunk):
        rid = row_ids[s : s + rows_per_chunk]
        left = ops.left[rid]
        best = torch.full((len(rid), k), never, dtype=torch.int64, device=device)
        for t in range(0, n_g, gc):
            cols = slice(t, min(t + gc, n_g))
            block = ops.finish(ops.block(left, cols, torch.empty(len(rid), cols.stop - t, device=device)))
            col_idx = torch.arange(t, cols.stop, device=device)
            keys = _order_keys(block, col_idx[None, :])
            if self_search:
                keys[rid[:, None] == col_idx[None, :]] = never
            keys = torch.topk(keys, min(k, keys.shape[1]), dim=1, largest=False).values
            best = torch.topk(torch.cat([best, keys], 1), k, dim=1, largest=False).values
        out_d[s : s + len(rid)], out_i[s : s + len(rid)] = _decode_keys(torch.sort(best, dim=1).values)
    return out_d, out_i


def exact_knn(
    queries: torch.Tensor,
    gallery: torch.Tensor | None,
    k: int,
    metric: Metric = "euclidean",
    query_chunk: int | None = None,
    gallery_chunk: int | None = None,
    backend: Backend = "auto",
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    symmetric: bool = True,
    block_hook: BlockHook | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest gallery items of every query, ordered by (distance, gallery index).

    Runs on the queries' device (CPU or CUDA) in float32. See the module docstring for the tie rule
    and the distances returned.

    Args:
        queries: (n_q, dim) embeddings.
        gallery: (n_g, dim) embeddings, or ``None`` to search the queries themselves, each query
            excluded by index (leave-one-out).
        k: Neighbours per query, 1 ≤ k ≤ number of candidates (n_g, or n_q − 1 without gallery).
        metric: ``euclidean`` (default; squared distances returned), ``cosine`` or ``dot`` (negated
            similarities returned).
        query_chunk: Queries per block (torch backend); automatic by default.
        gallery_chunk: Gallery items per block (torch backend); automatic by default. Without a
            gallery, one given chunk size is used for both sides.
        backend: ``torch`` (any device), ``faiss`` (CPU exact flat search; faiss blocks internally and
            ignores the chunk sizes) or ``auto`` (default), which is ``torch``: on the 2-core reference
            CPU it was faster than faiss 1.15 in every case measured (14,218 × 12,612 × 512-d: 0.95 s
            against 3.5 s for k = 1, 4.8 s against 7.2 s for k = 1000; leave-one-out also halves its
            work by symmetry). The tie rule is the same for both; faiss computes distances in another
            order of operations, so near-ties (not exact ones) can rank differently.
        memory_budget_mb: Budget of one automatic block (default 256 MiB).
        symmetric: Reuse each block for its rows and columns when the queries are the gallery and
            ``query_chunk == gallery_chunk`` (default ``True``).
        block_hook: Called with every distance block of the torch search (instrumentation, tests).

    Returns:
        ``(distances, indices)``: float32 and int64 tensors of shape (n_q, k) on the queries' device.

    Example:
        >>> x = torch.tensor([[0.0], [1.0], [1.0], [3.0]])
        >>> d, i = exact_knn(x, None, k=2)
        >>> i.tolist()  # item 0: items 1 and 2 tie at distance 1, the lower index comes first
        [[1, 2], [2, 0], [1, 0], [1, 2]]
        >>> d[0].tolist()
        [1.0, 1.0]
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    self_search = gallery is None
    q = _prepare(queries, metric, "queries")
    g = q if self_search else _prepare(gallery, metric, "gallery").to(q.device)
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"queries have dim {q.shape[1]} but the gallery has dim {g.shape[1]}")
    n_candidates = len(g) - 1 if self_search else len(g)
    if not 1 <= k <= n_candidates:
        raise ValueError(f"k={k} must be between 1 and the number of candidates ({n_candidates})")
    if len(g) >= 2**32:
        raise ValueError("the gallery must have fewer than 2**32 items")
    k1 = min(k + 1, n_candidates)
    qc, gc = chunk_sizes(len(q), len(g), query_chunk, gallery_chunk, memory_budget_mb, square=self_search)
    use_symmetric = self_search and symmetric and qc == gc
    if backend == "auto":
        backend = "torch"
    if backend == "faiss" and not faiss_available():
        raise ValueError("backend 'faiss' needs the faiss package (pip install faiss-cpu), which is not installed")
    ops = None if backend == "faiss" else _Operands(q, g, metric)
    if ops is None:
        d, i = _search_faiss(q, g, metric, k1, self_search)
    elif use_symmetric:
        d, i = _search_symmetric(ops, k1, qc, block_hook)
    else:
        d, i = _search_rows(ops, len(q), k1, self_search, qc, gc, block_hook)
    d, i = _sort_rows(d, i)
    if k1 > k:
        tied = torch.nonzero(d[:, k - 1] == d[:, k]).flatten()
        if len(tied):  # a tie straddles the k-th place: search these rows again, exactly
            ops = ops or _Operands(q, g, metric)
            budget_entries = max(int(memory_budget_mb * 2**20) // 16, 1)
            d[tied, :k], i[tied, :k] = _exact_rows(ops, tied, k, self_search, gc, budget_entries)
    return d[:, :k].contiguous(), i[:, :k].contiguous()
