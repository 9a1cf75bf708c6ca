"""Contrastive loss against Hadsell et al.'s formula, looped over all pairs."""

import math

import pytest
import torch

from dmlkit.losses import build_loss

from . import reference as ref
from .conftest import close, evaluate, make_batch


@pytest.mark.parametrize("reduction", ["nonzero_mean", "mean"])
@pytest.mark.parametrize("normalize", [True, False])
def test_matches_reference(dtype, reduction, normalize):
    x, y = make_batch(dtype)
    margin = 1.2 if normalize else 4.0
    params = {"neg_margin": margin, "normalize": normalize, "reduction": reduction}
    expected = ref.contrastive(x, y, 0.0, margin, normalize, reduction)
    assert evaluate("contrastive", x, y, params)[1] == pytest.approx(expected, **close(dtype))


def test_positive_margin(dtype):
    x, y = make_batch(dtype, seed=1)
    params = {"pos_margin": 0.8, "neg_margin": 1.3}
    expected = ref.contrastive(x, y, 0.8, 1.3)
    assert evaluate("contrastive", x, y, params)[1] == pytest.approx(expected, **close(dtype))


def test_closed_form():
    # a=(1,0), b=(0,1) class 0; c=(-1,0) class 1. Positives (a,b),(b,a): d²=2.
    # Negatives: d(a,c)=2 (inactive), d(b,c)=√2 -> [1.5-√2]² for (b,c) and (c,b).
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    y = torch.tensor([0, 0, 1])
    neg = (1.5 - math.sqrt(2)) ** 2
    loss = build_loss("contrastive", {"neg_margin": 1.5})
    assert float(loss(x, y)) == pytest.approx(2.0 + neg, rel=1e-6)
    loss = build_loss("contrastive", {"neg_margin": 1.5, "reduction": "mean"})
    assert float(loss(x, y)) == pytest.approx(2.0 + 2 * neg / 4, rel=1e-6)


def test_reference_set(dtype):
    x, y = make_batch(dtype)
    memory, memory_y = make_batch(dtype, seed=5, per_class=2)
    params = {"neg_margin": 1.2, "reduction": "mean"}
    expected = ref.contrastive(x, y, 0.0, 1.2, reduction="mean", ref=memory, ref_y=memory_y)
    got = evaluate("contrastive", x, y, params, memory, memory_y)[1]
    assert got == pytest.approx(expected, **close(dtype))
    # the batch as an explicit reference differs from no reference only by the (i, i) pairs
    assert evaluate("contrastive", x, y, params, x.clone(), y.clone())[1] < evaluate("contrastive", x, y, params)[1]


def test_gradient_pulls_positives_and_pushes_negatives():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], requires_grad=True)
    y = torch.tensor([0, 0, 1])
    build_loss("contrastive", {"neg_margin": 1.5, "normalize": False})(x, y).backward()
    # the anchor b=(0,1) is pulled toward a (class 0) and pushed away from c=(0.6,0.8) (class 1)
    step = -x.grad[1]
    assert step @ (x[0] - x[1]).detach() > 0
