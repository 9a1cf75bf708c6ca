"""Lifted structured loss (Song et al. eq. 4) against a loop over unordered positive pairs."""

import math

import pytest
import torch

from dmlkit.losses import build_loss

from . import reference as ref
from .conftest import close, evaluate, make_batch


@pytest.mark.parametrize(("alpha", "normalize"), [(1.0, True), (0.5, True), (1.0, False)])
def test_matches_reference(dtype, alpha, normalize):
    x, y = make_batch(dtype)
    expected = ref.lifted(x, y, alpha, normalize)
    got = evaluate("lifted", x, y, {"alpha": alpha, "normalize": normalize})[1]
    assert got == pytest.approx(expected, **close(dtype))


def test_closed_form():
    # i=(1,0), j=(0,1) class 0; k=(-1,0) class 1. D_ij = √2, D_ik = 2, D_jk = √2, α = 1:
    # J = log(e^{1−2} + e^{1−√2}) + √2, loss = J²/2 (one positive pair).
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    y = torch.tensor([0, 0, 1])
    j = math.log(math.exp(-1) + math.exp(1 - math.sqrt(2))) + math.sqrt(2)
    assert float(build_loss("lifted")(x, y)) == pytest.approx(j * j / 2, rel=1e-6)


def test_rejects_reference_set():
    x, y = make_batch(torch.float32)
    with pytest.raises(NotImplementedError, match="loss 'lifted' does not support a reference set"):
        build_loss("lifted")(x, y, x[:4], y[:4])
