"""Proxy-NCA, Proxy-Anchor and Normalized Softmax against per-sample loops with the module's proxies."""

import math

import pytest
import torch

from dmlkit.losses import build_loss

from . import reference as ref
from .conftest import CLASSES, DIM, close, evaluate, make_batch

PROXY_LOSSES = ["proxy_nca", "proxy_anchor", "normalized_softmax", "soft_triple"]


def proxies_of(loss):
    """The class vectors of a proxy loss, copied out as fp64 rows (C, D)."""
    inner = getattr(loss, "loss", loss)
    weights = inner.W.T if hasattr(inner, "W") else inner.proxies
    return weights.detach().double().clone()


@pytest.mark.parametrize(("scale", "include_positive"), [(1.0, False), (9.0, False), (3.0, True)])
def test_proxy_nca_matches_reference(dtype, scale, include_positive):
    x, y = make_batch(dtype)
    params = {"softmax_scale": scale, "include_positive": include_positive}
    loss, got = evaluate("proxy_nca", x, y, params)
    assert got == pytest.approx(ref.proxy_nca(x, y, proxies_of(loss), scale, include_positive), **close(dtype))


@pytest.mark.parametrize(("alpha", "margin"), [(32.0, 0.1), (16.0, 0.0)])
def test_proxy_anchor_matches_reference(alpha, margin):
    x, y = make_batch(torch.float32)
    y = y.clamp(max=2)  # class 3 absent from the batch: only present proxies count in the positive term
    loss, got = evaluate("proxy_anchor", x, y, {"alpha": alpha, "margin": margin})
    assert got == pytest.approx(ref.proxy_anchor(x, y, proxies_of(loss), alpha, margin), **close(torch.float32))


@pytest.mark.parametrize("temperature", [0.05, 0.5])
def test_normalized_softmax_matches_reference(temperature):
    x, y = make_batch(torch.float32)
    loss, got = evaluate("normalized_softmax", x, y, {"temperature": temperature})
    expected = ref.normalized_softmax(x, y, proxies_of(loss), temperature)
    assert got == pytest.approx(expected, **close(torch.float32))


@pytest.mark.parametrize("name", ["proxy_anchor", "normalized_softmax", "soft_triple"])
def test_pml_proxy_losses_compute_fp64_input_in_fp32(name):
    x, y = make_batch(torch.float64)
    loss, got = evaluate(name, x, y)  # checks the fp32 result
    assert all(p.dtype == torch.float32 for p in loss.parameters())  # PML would have cast them to fp64
    assert got == pytest.approx(float(loss(x.float(), y).detach()), rel=1e-6)


def test_proxy_anchor_closed_form():
    # proxies e1 (class 0), e2 (class 1); one sample x = e1 of class 0, α = 1, δ = 0:
    # positive term log(1 + e^{−1·1}) for proxy 0; negative term over both proxies: proxy 1 sees x at s = 0
    # -> log(1 + e^0); proxy 0 has no negatives -> 0; divided by |P| = 2.
    loss = build_loss("proxy_anchor", {"alpha": 1.0, "margin": 0.0}, embedding_dim=2, num_classes=2)
    with torch.no_grad():
        loss.loss.proxies.copy_(torch.eye(2))
    value = loss(torch.tensor([[1.0, 0.0]]), torch.tensor([0])).item()
    assert value == pytest.approx(math.log(1 + math.exp(-1)) + math.log(2) / 2, rel=1e-6)


def test_proxy_nca_closed_form():
    # x = e1 of class 0, proxies e1, e2, −e1: squared distances 0, 2, 4.
    loss = build_loss("proxy_nca", {}, embedding_dim=2, num_classes=3)
    with torch.no_grad():
        loss.proxies.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    x, y = torch.tensor([[2.0, 0.0]]), torch.tensor([0])
    assert loss(x, y).item() == pytest.approx(0 + math.log(math.exp(-2) + math.exp(-4)), rel=1e-6)
    loss.include_positive = True
    assert loss(x, y).item() == pytest.approx(math.log(1 + math.exp(-2) + math.exp(-4)), rel=1e-6)


@pytest.mark.parametrize("name", PROXY_LOSSES)
def test_gradients_reach_embeddings_and_proxies(name):
    x, y = make_batch(torch.float32)
    x.requires_grad_()
    loss = build_loss(name, {}, embedding_dim=DIM, num_classes=CLASSES)
    loss(x, y).backward()
    assert x.grad.abs().sum() > 0
    for p in loss.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


@pytest.mark.parametrize("name", [*PROXY_LOSSES, "margin"])
def test_bf16_autocast_keeps_parameters_fp32(name):
    x, y = make_batch(torch.float32)
    layer = torch.nn.Linear(DIM, DIM)
    loss = build_loss(name, {}, embedding_dim=DIM, num_classes=CLASSES)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        emb = layer(x)
        assert emb.dtype == torch.bfloat16
        out = loss(emb, y)
    out.backward()
    assert out.dtype == torch.float32 and torch.isfinite(out)
    assert layer.weight.grad is not None
    for p in loss.parameters():
        assert p.dtype == torch.float32 and p.grad.dtype == torch.float32
    # the same value as fp32 embeddings rounded to bf16
    again = build_loss(name, {}, embedding_dim=DIM, num_classes=CLASSES)
    again.load_state_dict(loss.state_dict())
    if name != "margin":  # margin samples triplets at random
        assert again(emb.detach().float(), y).item() == pytest.approx(out.item(), rel=1e-6)


@pytest.mark.parametrize(("name", "multiplier"), [("proxy_anchor", 100), ("proxy_nca", 100), ("soft_triple", 100)])
def test_lr_mults(name, multiplier):
    loss = build_loss(name, {}, embedding_dim=DIM, num_classes=CLASSES)
    assert loss.lr_mult == multiplier
    assert build_loss(name, {"lr_mult": 7.0}, embedding_dim=DIM, num_classes=CLASSES).lr_mult == 7.0
    assert build_loss("normalized_softmax", {}, embedding_dim=DIM, num_classes=CLASSES).lr_mult == 1


@pytest.mark.parametrize("name", PROXY_LOSSES)
def test_rejects_reference_set_and_unknown_labels(name):
    x, y = make_batch(torch.float32)
    loss = build_loss(name, {}, embedding_dim=DIM, num_classes=CLASSES)
    with pytest.raises(NotImplementedError, match=f"loss '{name}' does not support a reference set"):
        loss(x, y, x, y)
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.3"):
        loss(x, y + 1)
