"""Chunked exact kNN equals a naive full sort, ties included, with bounded blocks."""

import pytest
import torch

from dmlkit.evaluation.knn import exact_knn


def naive(q, g, k, metric, self_search):
    """Full distance matrix in float64, stable sort by (distance, index)."""
    q, g = q.double(), g.double()
    if metric == "cosine":
        q, g = torch.nn.functional.normalize(q, dim=1), torch.nn.functional.normalize(g, dim=1)
    d = torch.cdist(q, g) ** 2 if metric == "euclidean" else -(q @ g.T)
    if self_search:
        d.fill_diagonal_(float("inf"))
    order = torch.argsort(d, dim=1, stable=True)[:, :k]
    return d.gather(1, order), order


def data_with_ties(n=60, dim=4, seed=0):
    """Small integer coordinates: many exact duplicates and exactly equal distances."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-2, 3, (n, dim), generator=g).float()
    x[10] = x[3]
    x[11] = x[3]
    return x


@pytest.mark.parametrize("backend", ["torch", "faiss"])
@pytest.mark.parametrize("metric", ["euclidean", "dot"])
@pytest.mark.parametrize("chunks", [(None, None), (7, 5), (1, 60)])
def test_self_search_matches_naive_with_ties(backend, metric, chunks):
    x = data_with_ties()
    k = 9
    d, i = exact_knn(x, None, k, metric, query_chunk=chunks[0], gallery_chunk=chunks[1], backend=backend)
    rd, ri = naive(x, x, k, metric, True)
    assert torch.equal(i, ri)
    assert torch.allclose(d.double(), rd, atol=1e-4)
    assert not (i == torch.arange(len(x))[:, None]).any()  # a query never retrieves itself
    assert 10 in i[3].tolist() and 11 in i[3].tolist()  # ...but does retrieve its exact duplicates


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_query_gallery_matches_naive_with_ties(backend):
    q, g = data_with_ties(25, seed=1), data_with_ties(40, seed=2)
    q[0] = g[5]
    d, i = exact_knn(q, g, 12, "euclidean", query_chunk=4, gallery_chunk=9, backend=backend)
    rd, ri = naive(q, g, 12, "euclidean", False)
    assert torch.equal(i, ri)
    assert torch.allclose(d.double(), rd, atol=1e-4)
    assert i[0, 0] == 5


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_cosine_matches_naive(backend):
    """Cosine on continuous data (normalised integer vectors are not exact, so ties would not be)."""
    gen = torch.Generator().manual_seed(5)
    q, g = torch.randn(30, 8, generator=gen), torch.randn(50, 8, generator=gen) * 3
    d, i = exact_knn(q, g, 10, "cosine", query_chunk=7, gallery_chunk=11, backend=backend)
    rd, ri = naive(q, g, 10, "cosine", False)
    assert torch.equal(i, ri) and torch.allclose(d.double(), rd, atol=1e-5)


def test_random_continuous_data_matches_naive():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(300, 16, generator=g)
    d, i = exact_knn(x, None, 20, "euclidean", query_chunk=64, gallery_chunk=50, backend="torch")
    rd, ri = naive(x, x, 20, "euclidean", True)
    assert torch.equal(i, ri) and torch.allclose(d.double(), rd, rtol=1e-4, atol=1e-4)


def test_blocks_respect_chunk_sizes():
    x = torch.randn(500, 8)
    shapes = []
    exact_knn(
        x, None, 5, query_chunk=32, gallery_chunk=70, backend="torch", block_hook=lambda b: shapes.append(b.shape)
    )
    assert max(r * c for r, c in shapes) <= 32 * 70
    assert len(shapes) == -(-500 // 32) * -(-500 // 70)


def test_memory_budget_bounds_blocks_as_n_grows():
    for n in (2_000, 8_000):
        x = torch.randn(n, 4)
        blocks = []
        exact_knn(x, None, 3, memory_budget_mb=1, backend="torch", block_hook=blocks.append)
        assert max(b.numel() for b in blocks) * 4 <= 2**20  # one float32 block within 1 MiB whatever n is


def test_bad_k():
    with pytest.raises(ValueError, match="k=5 must be between 1 and the number of candidates"):
        exact_knn(torch.randn(5, 2), None, 5)
