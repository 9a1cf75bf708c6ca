"""Shared batch and tolerances for the loss tests."""

import pytest
import torch

from dmlkit.losses import build_loss

DIM, CLASSES, PER_CLASS = 8, 4, 3
DTYPES = [torch.float32, torch.float64]
TOLERANCE = {torch.float32: {"rel": 1e-5, "abs": 1e-6}, torch.float64: {"rel": 1e-9, "abs": 1e-12}}


def make_batch(dtype=torch.float32, seed=0, classes=CLASSES, per_class=PER_CLASS, dim=DIM):
    """Random embeddings of a P×K batch (classes × per_class), labels 0..P−1 in blocks."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(per_class)
    return torch.randn(len(labels), dim, generator=g, dtype=torch.float64).to(dtype), labels


def close(dtype):
    """Keyword arguments of ``pytest.approx`` for a loss computed in ``dtype``."""
    return TOLERANCE[dtype]


def evaluate(name, x, labels, params=None, ref=None, ref_labels=None):
    """(loss module, float value) of loss ``name`` built with ``params``."""
    loss = build_loss(name, params or {}, embedding_dim=x.shape[1], num_classes=CLASSES)
    with torch.no_grad():
        value = loss(x, labels, ref, ref_labels)
    assert value.dtype == (torch.float64 if x.dtype == torch.float64 and name in FP64_LOSSES else torch.float32)
    return loss, float(value)


FP64_LOSSES = {
    "angular", "contrastive", "lifted", "magnet", "margin", "multi_similarity", "npair", "proxy_nca", "triplet",
    "triplet2_dws",
}  # fmt: skip


@pytest.fixture(params=DTYPES, ids=["fp32", "fp64"])
def dtype(request):
    return request.param
