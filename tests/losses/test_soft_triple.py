"""SoftTriple (Qian et al. 2019) against a per-sample loop over the module's centres."""

import pytest
import torch
from pytorch_metric_learning.regularizers import SparseCentersRegularizer

from dmlkit.losses import build_loss

from . import reference as ref
from .conftest import CLASSES, DIM, close, evaluate, make_batch


def centers_of(loss):
    """(C, K, D) fp64 copy of the centres (stored as a D × C·K matrix, class-major)."""
    fc = loss.loss.fc.detach().double()
    return fc.T.reshape(CLASSES, loss.loss.centers_per_class, -1)


@pytest.mark.parametrize(("k", "tau"), [(3, 0.2), (3, 0.0), (1, 0.2), (10, 0.2)])
def test_matches_reference(k, tau):
    x, y = make_batch(torch.float32)
    loss, got = evaluate("soft_triple", x, y, {"centers_per_class": k, "tau": tau})
    expected = ref.soft_triple(x, y, centers_of(loss), 20.0, 0.1, 0.01, tau)
    assert got == pytest.approx(expected, **close(torch.float32))


def test_regulariser_equals_pml_sparse_centers_regularizer():
    loss = build_loss("soft_triple", {"centers_per_class": 4}, embedding_dim=DIM, num_classes=CLASSES)
    pml = SparseCentersRegularizer(CLASSES, 4)
    assert loss.center_regularizer().item() == pytest.approx(pml(loss.loss.fc.T).item(), rel=1e-5)


def test_merged_centres_cost_nothing_but_the_epsilon():
    loss = build_loss("soft_triple", {"centers_per_class": 2}, embedding_dim=2, num_classes=1)
    with torch.no_grad():
        loss.loss.fc.copy_(torch.tensor([[1.0, 2.0], [0.0, 0.0]]))  # both centres along e1
    assert loss.center_regularizer().item() == pytest.approx(1e-5**0.5 / 2, rel=1e-3)
