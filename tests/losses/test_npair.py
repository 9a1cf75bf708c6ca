"""N-pair (Sohn eq. 3) and Angular (Wang et al.) losses against per-pair loops."""

import math

import pytest
import torch

from dmlkit.losses import build_loss

from . import reference as ref
from .conftest import CLASSES, DIM, close, evaluate, make_batch


def pair_batch(dtype, seed=0):
    """CLASSES × (anchor, positive), interleaved: rows 2c, 2c+1 are class c."""
    return make_batch(dtype, seed=seed, per_class=2)


@pytest.mark.parametrize("l2_reg", [0.002, 0.0])
def test_npair_matches_eq3(dtype, l2_reg):
    x, y = pair_batch(dtype)
    expected = ref.npair(x[0::2], x[1::2], l2_reg, x)
    assert evaluate("npair", x, y, {"l2_reg": l2_reg})[1] == pytest.approx(expected, **close(dtype))


def test_npair_normalized(dtype):
    x, y = pair_batch(dtype, seed=1)
    unit = torch.nn.functional.normalize(x.double(), dim=1)
    expected = ref.npair(unit[0::2], unit[1::2], 0.0, unit)
    assert evaluate("npair", x, y, {"l2_reg": 0.0, "normalize": True})[1] == pytest.approx(expected, **close(dtype))


def test_npair_closed_form():
    # classes 0, 1 at e1, e2 (anchor = positive): each term log(1 + e^{0 − 1}); ‖f‖² = 1
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    y = torch.tensor([0, 0, 1, 1])
    assert float(build_loss("npair")(x, y)) == pytest.approx(math.log(1 + math.exp(-1)) + 0.002, rel=1e-6)


def test_npair_with_more_than_two_per_class_uses_the_first_pair(dtype):
    x, y = make_batch(dtype, per_class=3)  # rows 3c, 3c+1, 3c+2 are class c
    expected = ref.npair(x[0::3], x[1::3], 0.002, x)  # regulariser over the whole batch
    assert evaluate("npair", x, y)[1] == pytest.approx(expected, **close(dtype))


def test_npair_rejects_reference_set():
    x, y = pair_batch(torch.float32)
    with pytest.raises(NotImplementedError, match="loss 'npair' does not support a reference set"):
        build_loss("npair")(x, y, x, y)


@pytest.mark.parametrize("alpha", [45.0, 36.0])
def test_angular_matches_reference(dtype, alpha):
    x, y = make_batch(dtype)
    expected = ref.angular(x, y, alpha)
    assert evaluate("angular", x, y, {"alpha": alpha})[1] == pytest.approx(expected, **close(dtype))


def test_angular_closed_form():
    # a = p = e1 (class 0), n = e2 (class 1), α = 45° (tan² = 1): exponent 4·(a+p)ᵀn − 4·aᵀp = −4
    # for both ordered pairs (a, p) and (p, a).
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 0, 1])
    assert float(build_loss("angular")(x, y)) == pytest.approx(math.log(1 + math.exp(-4)), abs=1e-7)


def test_angular_normalises_negatives_too():
    x, y = make_batch(torch.float64)
    scaled = x * torch.linspace(0.5, 3, len(x), dtype=torch.float64)[:, None]
    loss = build_loss("angular")
    assert float(loss(scaled, y)) == pytest.approx(float(loss(x, y)), rel=1e-12)


def test_angular_reference_set(dtype):
    x, y = make_batch(dtype)
    memory, memory_y = make_batch(dtype, seed=9, per_class=2)
    expected = ref.angular(x, y, 45.0, ref=memory, ref_y=memory_y)
    assert evaluate("angular", x, y, {}, memory, memory_y)[1] == pytest.approx(expected, **close(dtype))


def test_gradients_reach_every_embedding_of_a_pair_batch():
    x, y = pair_batch(torch.float32)
    x.requires_grad_()
    build_loss("npair")(x, y).backward()
    assert bool((x.grad.abs().sum(1) > 0).all())
    assert x.shape == (2 * CLASSES, DIM)
