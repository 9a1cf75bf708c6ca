"""Every loss by name against a reference loop of its formula, plus the loss contract."""

import pytest
import torch

from dmlkit.errors import ConfigError
from dmlkit.losses import LOSSES, build_loss

from . import reference as ref

DIM, CLASSES = 8, 4


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(CLASSES).repeat_interleave(3)
    x = torch.randn(len(labels), DIM, generator=g, dtype=torch.float64)
    return x, labels


def value(name, x, labels, **params):
    loss = build_loss(name, params, embedding_dim=DIM, num_classes=CLASSES)
    return loss, float(loss(x.float(), labels))


@pytest.mark.parametrize("name", LOSSES.names())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_loss_runs_and_backpropagates(name, dtype, batch):
    x, labels = batch
    emb = x.to(dtype).requires_grad_()
    loss = build_loss(name, {}, embedding_dim=DIM, num_classes=CLASSES)
    out = loss(emb, labels)
    out.backward()
    assert out.dim() == 0 and torch.isfinite(out) and out.dtype == torch.float32
    assert emb.grad is not None and emb.grad.abs().sum() > 0
    for p in loss.parameters():
        assert p.dtype == torch.float32
        if p.requires_grad and name != "margin":
            assert p.grad is not None


def test_contrastive(batch):
    x, y = batch
    assert value("contrastive", x, y, margin=0.7)[1] == pytest.approx(ref.contrastive(x, y, 0.7), rel=1e-5)


@pytest.mark.parametrize("mining", ["all", "semihard", "hard"])
@pytest.mark.parametrize("squared", [False, True])
def test_triplet(batch, mining, squared):
    x, y = batch
    expected = ref.triplet(x, y, 0.2, squared, mining)
    assert value("triplet", x, y, margin=0.2, squared=squared, mining=mining)[1] == pytest.approx(expected, rel=1e-5)


def test_triplet_closed_form():
    # a=(1,0), p=(0,1), n=(-1,0) on the unit circle: d(a,p)=√2, d(a,n)=2 -> [√2 - 2 + 1]_+ = √2 - 1
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    loss = build_loss("triplet", {"margin": 1.0, "mining": "all"})
    # triplets (a,p,n)=(0,1,2) and (1,0,2): d(p,n)=√2 -> [√2-√2+1]=1
    assert float(loss(x, torch.tensor([0, 0, 1]))) == pytest.approx(((2**0.5 - 1) + 1.0) / 2, rel=1e-6)


def test_npair(batch):
    x, _ = batch
    pairs = torch.cat([x[0::3][:, None], x[1::3][:, None]], 1).reshape(-1, DIM)  # classes × (anchor, positive)
    labels = torch.arange(CLASSES).repeat_interleave(2)
    expected = ref.npair(pairs[0::2], pairs[1::2], 0.002, pairs)
    assert value("npair", pairs, labels)[1] == pytest.approx(expected, rel=1e-5)


def test_lifted(batch):
    x, y = batch
    assert value("lifted", x, y)[1] == pytest.approx(ref.lifted(x, y, 1.0), rel=1e-5)


def test_multi_similarity_without_mining(batch):
    x, y = batch
    expected = ref.multi_similarity(x, y, 2.0, 50.0, 1.0)
    assert value("multi_similarity", x, y, mining=False)[1] == pytest.approx(expected, rel=1e-5)


def test_proxy_anchor(batch):
    x, y = batch
    loss, got = value("proxy_anchor", x, y)
    assert loss.lr_multiplier == 100
    proxies = loss.loss.proxies.detach().double()
    assert got == pytest.approx(ref.proxy_anchor(x, y, proxies, 32.0, 0.1), rel=1e-5)


def test_proxy_nca(batch):
    x, y = batch
    loss, got = value("proxy_nca", x, y, softmax_scale=3.0)
    proxies = loss.loss.proxies.detach().double()
    assert got == pytest.approx(ref.proxy_nca(x, y, proxies, 3.0), rel=1e-5)


def test_normalized_softmax(batch):
    x, y = batch
    loss, got = value("normalized_softmax", x, y)
    weights = loss.loss.W.detach().double().T
    assert got == pytest.approx(ref.normalized_softmax(x, y, weights, 0.05), rel=1e-5)


def test_margin_with_all_triplets(batch):
    x, y = batch
    loss = build_loss("margin", {"miner": {"name": "batch_hard"}}, num_classes=CLASSES)
    loss.miner = None  # all triplets, to compare with the formula
    assert float(loss(x.float(), y)) == pytest.approx(ref.margin(x, y, 0.2, 1.2), rel=1e-5)


def test_soft_triple_without_regulariser(batch):
    x, y = batch
    loss, got = value("soft_triple", x, y, tau=0.0, centers_per_class=3)
    centers = torch.nn.functional.normalize(loss.loss.fc.detach().double(), dim=0)  # (D, C*K)
    centers = centers.T.reshape(CLASSES, 3, DIM)
    assert got == pytest.approx(ref.soft_triple(x, y, centers, 20.0, 0.1, 0.01), rel=1e-5)


def test_angular(batch):
    x, y = batch
    assert value("angular", x, y, alpha=40.0)[1] == pytest.approx(ref.angular(x, y, 40.0), rel=1e-5)


def test_reference_set(batch):
    x, y = batch
    loss = build_loss("contrastive", {"margin": 0.7})
    # batch against itself as an explicit reference: pairs (i, i) are then positives with d = 0
    assert float(loss(x.float(), y, x.float(), y)) < ref.contrastive(x, y, 0.7)
    triplet = build_loss("triplet", {"mining": "all"})
    assert torch.isfinite(triplet(x[:6].float(), y[:6], x[6:].float(), y[6:]))


def test_bf16_autocast_keeps_proxies_fp32(batch):
    x, y = batch
    loss = build_loss("proxy_anchor", {}, embedding_dim=DIM, num_classes=CLASSES)
    layer = torch.nn.Linear(DIM, DIM)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        emb = layer(x.float())
        assert emb.dtype == torch.bfloat16
        out = loss(emb, y)
    out.backward()
    assert out.dtype == torch.float32 and loss.loss.proxies.dtype == torch.float32
    assert loss.loss.proxies.grad.dtype == torch.float32


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("tripplet", {}, r"loss: unknown loss 'tripplet'; valid choices: angular"),
        ("triplet", {"margn": 0.1}, r"loss\.margn for loss 'triplet'; valid keys: margin, mining"),
        ("triplet", {"margin": -1}, r"'loss\.margin': must be >= 0"),
        ("triplet", {"mining": "easy"}, r"'loss\.mining': unknown 'easy'"),
        ("triplet", {"miner": {"name": "nope"}}, r"loss\.miner.*unknown miner 'nope'"),
        ("proxy_anchor", {"miner": {"name": "batch_hard"}}, r"loss 'proxy_anchor' does not take a miner"),
        ("normalized_softmax", {"temperature": 0}, r"'loss\.temperature': must be > 0"),
    ],
)
def test_bad_loss_config(name, params, message):
    with pytest.raises(ConfigError, match=message):
        build_loss(name, params, embedding_dim=DIM, num_classes=CLASSES)
