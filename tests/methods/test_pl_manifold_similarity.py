"""PL similarity: the slide formula, faster decay off the piece, symmetrisation, binary ablation, batch form."""

import numpy as np
import pytest
import torch

from dmlkit.errors import ConfigError
from dmlkit.methods.pl_manifold.piecewise_linear import fit_pieces, orthogonal_and_inplane
from dmlkit.methods.pl_manifold.similarity import (
    binary_similarity,
    data_similarity,
    pl_similarity,
    symmetric_similarity,
)


def test_formula_on_a_hand_case():
    o = torch.tensor([[0.0, 2.0], [6.0, 0.0]])
    p = torch.tensor([[0.0, 3.0], [1.0, 0.0]])
    s = pl_similarity(o, p, n_alpha=2.0, n_beta=0.5, distance_scale="none")
    expected = torch.tensor([[1.0, (1 / 2) ** 2 * (1 / 4) ** 0.5], [(1 / 4) ** 2 * (1 / 2) ** 0.5, 1.0]])
    torch.testing.assert_close(s, expected)
    # mean normalisation over the off-diagonal entries: o / 4, p / 2
    off = ~torch.eye(2, dtype=torch.bool)
    s = pl_similarity(o, p, n_alpha=2.0, n_beta=0.5, distance_scale="mean", mask=off)
    expected = torch.tensor([[1.0, (1 / 1.25) ** 2 * (1 / 2.5) ** 0.5], [(1 / 1.75) ** 2 * (1 / 1.5) ** 0.5, 1.0]])
    torch.testing.assert_close(s, expected)
    # without a mask the means run over every entry: o / 2, p / 1
    s = pl_similarity(o, p, n_alpha=2.0, n_beta=0.5, distance_scale="mean")
    torch.testing.assert_close(s[0, 1], torch.tensor((1 / 1.5) ** 2 * (1 / 4) ** 0.5))


def test_range_dtype_and_errors():
    gen = torch.Generator().manual_seed(0)
    o, p = torch.rand(30, 20, generator=gen) * 50, torch.rand(30, 20, generator=gen) * 50
    for distance_scale in ("mean", "none"):
        s = pl_similarity(o, p, distance_scale=distance_scale)
        assert (s > 0).all() and (s <= 1).all()
    assert pl_similarity(torch.zeros(3), torch.zeros(3), distance_scale="none").tolist() == [1.0, 1.0, 1.0]
    assert pl_similarity(o.half(), p.half()).dtype == torch.float32
    with pytest.raises(ConfigError, match="method.distance_scale"):
        pl_similarity(o, p, distance_scale="minmax")
    with pytest.raises(ConfigError, match="method.n_alpha"):
        pl_similarity(o, p, n_alpha=-1.0)
    with pytest.raises(ConfigError, match="method.n_beta"):
        pl_similarity(o, p, n_beta=float("nan"))


@pytest.mark.parametrize(("n_alpha", "n_beta"), [(3.0, 0.5), (4.0, 1.0), (2.0, 1.0)])
def test_decays_faster_off_the_piece_than_along_it(n_alpha, n_beta):
    """The same displacement from the anchor, orthogonal vs in-plane, through the geometry."""
    centre, basis = torch.zeros(1, 3), torch.tensor([[[1.0], [0.0], [0.0]]])
    for t in (0.1, 0.5, 1.0, 3.0):
        x = torch.tensor([[t, 0.0, 0.0], [0.0, t, 0.0]])  # along the piece; off it
        o, p = orthogonal_and_inplane(x, centre, centre, basis)
        s = pl_similarity(o, p, n_alpha, n_beta, distance_scale="none")[:, 0]
        assert s[1] < s[0] < 1.0


def test_symmetric_similarity():
    gen = torch.Generator().manual_seed(1)
    s_prime = torch.rand(6, 6, generator=gen)
    s = symmetric_similarity(s_prime)
    assert torch.equal(s, s.T) and (s.diagonal() == 1).all()
    off = ~torch.eye(6, dtype=torch.bool)
    torch.testing.assert_close(s[off], (0.5 * (s_prime + s_prime.T))[off])
    r = symmetric_similarity(s_prime, rescale=True)
    assert r[off].min().item() == pytest.approx(0.0) and r[off].max().item() == pytest.approx(1.0)
    assert (r.diagonal() == 1).all()
    torch.testing.assert_close(r[off], (s[off] - s[off].min()) / (s[off].max() - s[off].min()))
    constant = symmetric_similarity(torch.full((3, 3), 0.4), rescale=True)
    torch.testing.assert_close(constant, torch.tensor([[1.0, 0.4, 0.4], [0.4, 1.0, 0.4], [0.4, 0.4, 1.0]]))


def test_binary_similarity_hand_case():
    members = torch.tensor(
        [
            [True, True, False, False],
            [False, True, False, False],
            [False, False, True, True],
            [False, False, False, False],  # even a point missing from its own row gets a 1 on the diagonal
        ]
    )
    expected = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=torch.float32)
    assert torch.equal(binary_similarity(members), expected)


def reference_data_similarity(x, pieces, n_alpha, n_beta):
    """Pairwise loops in float64: o, p w.r.t. the other point's piece, off-diagonal means, symmetrised."""
    x = x.double().numpy()
    c, u = pieces.centres.double().numpy(), pieces.bases.double().numpy()
    n = len(x)
    o, p = np.zeros((n, n)), np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            v = x[i] - c[j]
            projection = c[j] + u[j] @ (u[j].T @ v)
            o[i, j] = np.linalg.norm(x[i] - projection)
            p[i, j] = np.linalg.norm(projection - x[j])
    off = ~np.eye(n, dtype=bool)
    o, p = o / o[off].mean(), p / p[off].mean()
    s_prime = (1 + o / 2) ** -n_alpha * (1 + p) ** -n_beta
    s = 0.5 * (s_prime + s_prime.T)
    np.fill_diagonal(s, 1.0)
    return s


def test_data_similarity_matches_pairwise_loops():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(15, 5, generator=gen)
    pieces = fit_pieces(x, rank=2, max_size=6, threshold=0.6)
    s = data_similarity(x, pieces, n_alpha=3.0, n_beta=0.5)
    np.testing.assert_allclose(s.double().numpy(), reference_data_similarity(x, pieces, 3.0, 0.5), atol=1e-5)
    assert torch.equal(s, s.T) and (s.diagonal() == 1).all() and (s > 0).all() and (s <= 1).all()
    # mean normalisation makes the similarity independent of the embedding scale
    torch.testing.assert_close(data_similarity(3 * x, fit_pieces(3 * x, 2, 6, 0.6)), s, atol=1e-5, rtol=1e-5)
    assert torch.equal(data_similarity(x, pieces, binary=True), binary_similarity(pieces.members))
