"""Chunked exact kNN equals a naive full sort by (distance, index), ties included, in bounded memory."""

import itertools

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import dmlkit.evaluation.knn as knn_module
from dmlkit.evaluation.knn import chunk_sizes, exact_knn


def naive(q, g, k, metric, leave_one_out):
    """The whole distance matrix in float64, then a stable sort: ties go to the lower index."""
    q, g = q.double(), g.double()
    if metric == "cosine":
        q, g = torch.nn.functional.normalize(q, dim=1), torch.nn.functional.normalize(g, dim=1)
    d = torch.cdist(q, g) ** 2 if metric == "euclidean" else -(q @ g.T)
    if leave_one_out:
        d.fill_diagonal_(float("inf"))
    order = torch.argsort(d, dim=1, stable=True)[:, :k]
    return d.gather(1, order), order


def tied_points(n, dim=3, seed=0):
    """Small integer coordinates: many exact duplicates and exactly equal distances (exact in float32).

    For ``cosine`` the rows are sign patterns scaled by powers of two, so that the normalised rows and
    their dot products are exact too.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(-2, 3, (n, dim), generator=gen).float()
    x[x.abs().sum(1) == 0, 0] = 1.0
    x[n // 2] = x[1]  # explicit duplicates of item 1
    x[n // 2 + 1] = x[1]
    return x


def cosine_points(n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 3, (n, 4), generator=gen).float() - 1  # entries -1, 0, 1
    signs[:, 0] = torch.where(signs.abs().sum(1) == 0, 1.0, signs[:, 0])
    norms = signs.abs().sum(1, keepdim=True)
    signs = signs[(norms == 1).squeeze(1) | (norms == 4).squeeze(1)]  # unit norm 1 or 2: exact
    scale = 2.0 ** torch.randint(-2, 3, (len(signs), 1), generator=gen).float()
    return signs * scale


CHUNKS = [(None, None), (4, 4), (3, 7), (1, 64), (64, 1)]


@pytest.mark.parametrize("backend", ["torch", "faiss"])
@pytest.mark.parametrize("metric", ["euclidean", "dot", "cosine"])
@pytest.mark.parametrize("chunks", CHUNKS)
def test_leave_one_out_matches_naive_with_ties(backend, metric, chunks):
    x = cosine_points(80) if metric == "cosine" else tied_points(40)
    for k in (1, 4, 9, len(x) - 1):
        d, i = exact_knn(x, None, k, metric, query_chunk=chunks[0], gallery_chunk=chunks[1], backend=backend)
        ref_d, ref_i = naive(x, x, k, metric, leave_one_out=True)
        assert torch.equal(i, ref_i), (k, metric)
        assert torch.allclose(d.double(), ref_d, atol=1e-5)
        assert d.dtype == torch.float32 and i.dtype == torch.int64


@pytest.mark.parametrize("backend", ["torch", "faiss"])
@pytest.mark.parametrize("metric", ["euclidean", "dot", "cosine"])
@pytest.mark.parametrize("chunks", CHUNKS)
def test_query_gallery_matches_naive_with_ties(backend, metric, chunks):
    if metric == "cosine":
        q, g = cosine_points(30, seed=1), cosine_points(50, seed=2)
    else:
        q, g = tied_points(25, seed=1), tied_points(41, seed=2)
    q[0] = g[5]  # a query identical to a gallery item
    for k in (1, 6, len(g)):
        d, i = exact_knn(q, g, k, metric, query_chunk=chunks[0], gallery_chunk=chunks[1], backend=backend)
        ref_d, ref_i = naive(q, g, k, metric, leave_one_out=False)
        assert torch.equal(i, ref_i), (k, metric)
        assert torch.allclose(d.double(), ref_d, atol=1e-5)


def test_query_is_excluded_by_index_not_by_distance():
    x = torch.tensor([[0.0], [0.0], [0.0], [5.0]])  # three identical points
    d, i = exact_knn(x, None, 2)
    assert i.tolist() == [[1, 2], [0, 2], [0, 1], [0, 1]]  # duplicates retrieved, never the query itself
    assert d[:3].tolist() == [[0.0, 0.0]] * 3


def test_boundary_tie_takes_lower_indices():
    # for query 0 the items 1..6 are all at distance 1; k=3 must keep 1, 2, 3 whatever the blocks
    x = torch.tensor([[0.0], [1.0], [-1.0], [1.0], [-1.0], [1.0], [-1.0], [4.0]])
    for chunks in [(None, None), (2, 2), (3, 2), (8, 1)]:
        d, i = exact_knn(x, None, 3, query_chunk=chunks[0], gallery_chunk=chunks[1], backend="torch")
        assert i[0].tolist() == [1, 2, 3] and d[0].tolist() == [1.0, 1.0, 1.0]
    d, i = exact_knn(x, None, 3, backend="faiss")
    assert i[0].tolist() == [1, 2, 3]


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_boundary_ties_are_searched_again(backend, monkeypatch):
    """Rows with a tie across the k-th place go through the exact fallback, and only those rows."""
    calls = []
    exact_rows = knn_module._exact_rows

    def spy(ops, row_ids, *args):
        calls.append(row_ids.tolist())
        return exact_rows(ops, row_ids, *args)

    monkeypatch.setattr(knn_module, "_exact_rows", spy)
    x = tied_points(60, dim=2)
    _, i = exact_knn(x, None, 5, query_chunk=8, backend=backend)
    ref_d, ref_i = naive(x, x, 5, "euclidean", leave_one_out=True)
    assert torch.equal(i, ref_i)
    straddling = (ref_d[:, 4] == naive(x, x, 6, "euclidean", True)[0][:, 5]).nonzero().flatten().tolist()
    assert calls == [straddling] and straddling


def test_continuous_data_many_blocks_matches_naive():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(500, 16, generator=gen)
    ref_d, ref_i = naive(x, x, 20, "euclidean", leave_one_out=True)
    for chunks in [(64, 64), (64, 50), (None, None)]:
        d, i = exact_knn(x, None, 20, query_chunk=chunks[0], gallery_chunk=chunks[1], backend="torch")
        assert torch.equal(i, ref_i)
        assert torch.allclose(d.double(), ref_d, rtol=1e-5, atol=1e-5)


def test_symmetric_and_row_searches_agree():
    x = tied_points(300, dim=4, seed=7)
    a = exact_knn(x, None, 7, query_chunk=32, symmetric=True, backend="torch")
    b = exact_knn(x, None, 7, query_chunk=32, symmetric=False, backend="torch")
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_blocks_respect_explicit_chunk_sizes():
    x = torch.randn(500, 8)
    shapes = []
    exact_knn(x, None, 5, query_chunk=32, gallery_chunk=70, block_hook=lambda b: shapes.append(tuple(b.shape)))
    assert max(r * c for r, c in shapes) <= 32 * 70
    assert len(shapes) == -(-500 // 32) * -(-500 // 70)  # every (query block, gallery block) once
    shapes.clear()
    exact_knn(x, None, 5, gallery_chunk=50, block_hook=lambda b: shapes.append(tuple(b.shape)))
    assert max(r * c for r, c in shapes) <= 50 * 50
    assert len(shapes) == 10 * 11 // 2  # symmetric: each pair of the 10 blocks of 50 once


def test_memory_budget_bounds_the_blocks():
    n, budget_mb = 1200, 0.1
    blocks = []
    for gallery in (None, torch.randn(n, 4)):
        exact_knn(torch.randn(n, 4), gallery, 3, memory_budget_mb=budget_mb, block_hook=blocks.append)
    assert max(b.numel() for b in blocks) * 9 <= budget_mb * 2**20  # 9 bytes an entry: distance, threshold, mask
    assert n * n * 4 > 10 * budget_mb * 2**20  # the full matrix would not fit many times over


@pytest.mark.parametrize("mode", ["symmetric", "rows", "query/gallery"])
def test_no_allocation_grows_with_n_squared(mode):
    """Every tensor allocated during the search is within the block budget or O(n·k), never O(n²)."""
    n, k, budget_mb = 800, 5, 0.125
    x = torch.randn(n, 8)
    gallery = torch.randn(n, 8) if mode == "query/gallery" else None
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        exact_knn(x, gallery, k, memory_budget_mb=budget_mb, symmetric=mode == "symmetric", backend="torch")
    largest = max(abs(e.cpu_memory_usage) for e in prof.events() if e.name == "[memory]")
    lists = n * 2 * (k + 1) * 8  # the running lists and their merge buffers
    assert largest <= max(budget_mb * 2**20, lists)
    assert largest * 15 < n * n * 4  # far below one full distance matrix


def test_chunk_sizes():
    assert chunk_sizes(10, 20, 3, 5) == (3, 5)  # explicit sizes kept
    assert chunk_sizes(100, 100, None, 7, square=True) == (7, 7)  # one given: both sides
    qc, gc = chunk_sizes(10**6, 10**6, memory_budget_mb=64)
    assert qc * gc * 9 <= 64 * 2**20 and qc <= knn_module.MAX_AUTO_TILE
    assert chunk_sizes(5, 3) == (5, 3)  # small sets: one block
    with pytest.raises(ValueError, match="gallery_chunk must be a positive integer"):
        chunk_sizes(5, 5, 1, 0)


def test_invalid_arguments():
    x = torch.randn(5, 2)
    with pytest.raises(ValueError, match=r"k=5 must be between 1 and the number of candidates \(4\)"):
        exact_knn(x, None, 5)
    with pytest.raises(ValueError, match="metric must be one of"):
        exact_knn(x, None, 1, metric="manhattan")
    with pytest.raises(ValueError, match="backend must be one of"):
        exact_knn(x, None, 1, backend="annoy")
    with pytest.raises(ValueError, match="dim 2 but the gallery has dim 3"):
        exact_knn(x, torch.randn(4, 3), 1)
    with pytest.raises(ValueError, match="NaN or infinite"):
        exact_knn(torch.tensor([[0.0], [float("nan")]]), None, 1)


def test_order_keys_follow_distance_then_index():
    values = torch.tensor([-3.5, -1e-30, -0.0, 0.0, 1e-30, 2.0, float("inf")])
    for a, b in itertools.combinations(range(len(values)), 2):  # values[a] <= values[b]
        ka = knn_module._order_keys(values[a : a + 1], torch.tensor([7]))
        kb = knn_module._order_keys(values[b : b + 1], torch.tensor([3]))
        assert bool(ka < kb) if values[a] < values[b] else bool(ka > kb)  # equal values: lower index first
    d, i = knn_module._decode_keys(knn_module._order_keys(values, torch.arange(7)))
    assert torch.equal(d, values) and i.tolist() == list(range(7))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu():
    x = tied_points(500, dim=4)
    cpu = exact_knn(x, None, 8, query_chunk=64, backend="torch")
    gpu = exact_knn(x.cuda(), None, 8, query_chunk=64, backend="torch")
    assert gpu[1].device.type == "cuda"
    assert torch.equal(cpu[1], gpu[1].cpu()) and torch.equal(cpu[0], gpu[0].cpu())


def test_faiss_backend_without_faiss_is_a_clear_error(monkeypatch):
    from dmlkit.evaluation import knn

    monkeypatch.setattr(knn, "faiss_available", lambda: False)
    with pytest.raises(ValueError, match="faiss-cpu"):
        knn.exact_knn(torch.randn(5, 3), None, k=2, backend="faiss")
    assert knn.exact_knn(torch.randn(5, 3), None, k=2, backend="auto")[1].shape == (5, 2)
