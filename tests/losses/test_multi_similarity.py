"""Multi-Similarity loss (Wang et al. 2019) with and without its pair mining, against per-anchor loops."""

import pytest
import torch

from dmlkit.losses import build_loss

from . import reference as ref
from .conftest import close, evaluate, make_batch


@pytest.mark.parametrize("base", [1.0, 0.5])
def test_all_pairs_matches_reference(dtype, base):
    x, y = make_batch(dtype)
    expected = ref.multi_similarity(x, y, 2.0, 40.0, base)
    assert evaluate("multi_similarity", x, y, {"mining": "all", "base": base})[1] == pytest.approx(
        expected, **close(dtype)
    )


@pytest.mark.parametrize("epsilon", [0.1, 0.3])
def test_mined_pairs_match_reference(dtype, epsilon):
    x, y = make_batch(dtype, seed=3)
    loss, got = evaluate("multi_similarity", x, y, {"epsilon": epsilon, "base": 0.5})
    a1, _, a2, _ = loss.mine(x.to(torch.float64 if dtype == torch.float64 else torch.float32), y)
    assert 0 < len(a2) < len(y) * 9 and 0 < len(a1) <= len(y) * 2  # the mining drops some pairs
    assert got == pytest.approx(ref.multi_similarity(x, y, 2.0, 40.0, 0.5, epsilon), **close(dtype))


def test_closed_form():
    # a, b class 0 at cos 0 (orthogonal), c class 1 identical to a: s_ab = 0, s_ac = 1, s_bc = 0, λ = 1, no mining.
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    y = torch.tensor([0, 0, 1])
    pos = torch.log1p(torch.exp(torch.tensor(2.0))) / 2  # anchors a and b: log(1 + e^{−2(0−1)})/2
    neg_a = torch.log1p(torch.exp(torch.tensor(0.0))) / 50  # s_ac = 1: log(1 + e^0)/50
    neg_b = torch.log1p(torch.exp(torch.tensor(-50.0))) / 50
    expected = (2 * pos + neg_a + neg_b + neg_a + neg_b) / 3  # c's negatives are a (s=1) and b (s=0)
    got = build_loss("multi_similarity", {"mining": "all", "base": 1.0, "beta": 50.0})(x, y)
    assert float(got) == pytest.approx(float(expected), rel=1e-6)


def test_the_default_base_is_the_authors_code():
    assert build_loss("multi_similarity", {}).loss.base == 0.5  # not the paper's text (1): docstring


def test_reference_set(dtype):
    x, y = make_batch(dtype)
    memory, memory_y = make_batch(dtype, seed=11, per_class=2)
    for mining, epsilon in [("all", None), ("multi_similarity", 0.1)]:
        expected = ref.multi_similarity(x, y, 2.0, 40.0, 1.0, epsilon, ref=memory, ref_y=memory_y)
        got = evaluate("multi_similarity", x, y, {"mining": mining, "base": 1.0}, memory, memory_y)[1]
        assert got == pytest.approx(expected, **close(dtype))
