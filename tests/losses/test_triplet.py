"""Triplet, Triplet2 + distance-weighted sampling and Margin loss against loops over their triplets."""

import math

import pytest
import torch

from dmlkit.losses import build_loss

from . import reference as ref
from .conftest import CLASSES, close, evaluate, make_batch


@pytest.mark.parametrize("mining", ["all", "semihard", "hard"])
@pytest.mark.parametrize("squared", [True, False])
def test_triplet_matches_reference(dtype, mining, squared):
    x, y = make_batch(dtype)
    margin = 0.5 if squared else 0.3  # wide enough for some semi-hard triplets
    params = {"margin": margin, "squared": squared, "mining": mining}
    expected = ref.triplet(x, y, margin, squared, mining)
    assert expected > 0
    assert evaluate("triplet", x, y, params)[1] == pytest.approx(expected, **close(dtype))


@pytest.mark.parametrize("reduction", ["mean", "nonzero_mean"])
def test_triplet_reduction_and_unnormalised(dtype, reduction):
    x, y = make_batch(dtype, seed=2)
    params = {"margin": 1.0, "squared": False, "mining": "all", "normalize": False, "reduction": reduction}
    expected = ref.triplet(x, y, 1.0, False, "all", normalize=False, reduction=reduction)
    assert evaluate("triplet", x, y, params)[1] == pytest.approx(expected, **close(dtype))


def test_triplet_closed_form():
    # a=(1,0), p=(0,1) class 0; n=(-1,0) class 1. Triplets (a,p,n): d_ap=√2, d_an=2; (p,a,n): d_pa=√2, d_pn=√2.
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    y = torch.tensor([0, 0, 1])
    plain = build_loss("triplet", {"margin": 1.0, "mining": "all", "squared": False})
    assert float(plain(x, y)) == pytest.approx(((math.sqrt(2) - 2 + 1) + 1.0) / 2, rel=1e-6)
    squared = build_loss("triplet", {"margin": 1.0, "mining": "all"})  # [2 - 4 + 1]_+ = 0 and [2 - 2 + 1] = 1
    assert float(squared(x, y)) == pytest.approx(0.5, rel=1e-6)
    # semi-hard keeps (a,p,n) only when 0 < d_an² - d_ap² = 2 <= margin
    assert float(build_loss("triplet", {"margin": 2.5})(x, y)) == pytest.approx(0.5, rel=1e-6)
    assert float(build_loss("triplet", {"margin": 1.5})(x, y)) == 0.0


def test_triplet_reference_set(dtype):
    x, y = make_batch(dtype)
    memory, memory_y = make_batch(dtype, seed=7, per_class=2)
    for mining in ["all", "hard", "semihard"]:
        expected = ref.triplet(x, y, 0.5, True, mining, ref=memory, ref_y=memory_y)
        got = evaluate("triplet", x, y, {"margin": 0.5, "mining": mining}, memory, memory_y)[1]
        assert got == pytest.approx(expected, **close(dtype))


def test_configured_miner_uses_the_loss_distance():
    loss = build_loss("triplet", {"margin": 0.3, "squared": False, "miner": {"name": "batch_hard"}})
    assert loss.miner.distance.power == 1 and loss.miner.distance.normalize_embeddings
    x, y = make_batch(torch.float64)
    assert float(loss(x, y)) == pytest.approx(ref.triplet(x, y, 0.3, False, "hard"), rel=1e-9)
    semihard = build_loss("triplet", {"margin": 0.3, "miner": {"name": "semihard"}}).miner
    assert semihard.margin == 0.3 and semihard.distance.power == 2


def sampled_value(name, x, y, params, seed=3):
    """The loss and the triplets its distance-weighted miner draws with the same random state."""
    loss = build_loss(name, params, num_classes=CLASSES)
    torch.manual_seed(seed)
    with torch.no_grad():
        value = float(loss(x, y))
    torch.manual_seed(seed)
    a, p, n = loss.mine(x.to(torch.float64 if x.dtype == torch.float64 else torch.float32), y)
    return loss, value, list(zip(a.tolist(), p.tolist(), n.tolist(), strict=True))


@pytest.mark.parametrize("reduction", ["mean", "nonzero_mean"])
def test_triplet2_dws_matches_reference_over_sampled_triplets(dtype, reduction):
    x, y = make_batch(dtype, classes=6, per_class=4, dim=4)
    _, value, triplets = sampled_value("triplet2_dws", x, y, {"reduction": reduction})
    assert len(triplets) == 6 * 4 * 4  # K triplets per anchor
    assert value == pytest.approx(ref.triplet_over(x, triplets, 0.2, reduction=reduction), **close(dtype))


def test_distance_weighted_sampling_draws_valid_negatives():
    x, y = make_batch(torch.float64, classes=8, per_class=4, dim=4, seed=4)
    unit = torch.nn.functional.normalize(x, dim=1)
    loss = build_loss("triplet2_dws", {"nonzero_loss_cutoff": 1.2})
    torch.manual_seed(0)
    a, p, n = loss.mine(x, y)
    assert len(a) > 0
    assert bool((y[a] == y[p]).all() and (a != p).all() and (y[a] != y[n]).all())
    assert bool(((unit[a] - unit[n]).norm(dim=1) < 1.2).all())


def test_distance_weighted_sampling_frequencies_follow_inverse_sphere_density():
    # 4-D: q(d) ∝ d²(1 − d²/4)^½, so a negative at d = 0.8 is drawn w(0.8)/w(1.2) ≈ 1.96 times as
    # often as one at d = 1.2 (w = 1/q); one at d = 1.6 > nonzero_loss_cutoff never.
    def on_sphere(d):
        c = 1 - d * d / 2
        return [c, math.sqrt(1 - c * c), 0.0, 0.0]

    x = torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 20 + [on_sphere(0.8), on_sphere(1.2), on_sphere(1.6)])
    y = torch.tensor([0] * 20 + [1, 2, 3])
    loss = build_loss("triplet2_dws")
    torch.manual_seed(0)
    drawn = torch.cat([loss.mine(x, y)[2] for _ in range(10)])
    counts = torch.bincount(drawn, minlength=23)[20:]
    assert counts[2] == 0 and counts.sum() == 10 * 20 * 20
    w = [d**-2 * (1 - d * d / 4) ** -0.5 for d in (0.8, 1.2)]
    assert float(counts[0] / counts[1]) == pytest.approx(w[0] / w[1], rel=0.1)


def test_margin_all_triplets_matches_reference(dtype):
    x, y = make_batch(dtype)
    loss, value = evaluate("margin", x, y, {"mining": "all", "beta_per_class": False})
    triplets = ref.all_triplets(y.tolist(), y.tolist(), True)
    beta = loss.loss.beta.item()  # the fp32 parameter: 1.2 rounded to fp32
    assert value == pytest.approx(ref.margin_loss(x, y, triplets, 0.2, beta), **close(dtype))
    assert loss.lr_mult == 50


def test_margin_learns_one_beta_per_class_by_default():
    """Wu et al.'s code: β has one entry per training class, indexed by the anchor's label."""
    loss = build_loss("margin", {}, num_classes=CLASSES)
    assert loss.loss.beta.shape == (CLASSES,) and torch.all(loss.loss.beta == torch.tensor(1.2))
    with pytest.raises(ValueError, match="margin"):
        build_loss("margin", {})


def test_margin_per_class_beta_over_sampled_triplets(dtype):
    x, y = make_batch(dtype, classes=CLASSES, per_class=4, dim=4)
    loss, _, _ = sampled_value("margin", x, y, {"beta_per_class": True})
    with torch.no_grad():
        loss.loss.beta.copy_(torch.tensor([0.875, 1.0, 1.125, 1.25]))  # exact in fp32
    torch.manual_seed(3)
    with torch.no_grad():
        value = float(loss(x, y))
    torch.manual_seed(3)
    a, p, n = loss.mine(x, y)
    triplets = list(zip(a.tolist(), p.tolist(), n.tolist(), strict=True))
    expected = ref.margin_loss(x, y, triplets, 0.2, [0.875, 1.0, 1.125, 1.25])
    assert value == pytest.approx(expected, **close(dtype))


def test_margin_beta_learns_and_stays_fp32():
    x, y = make_batch(torch.float64)
    loss = build_loss(
        "margin", {"mining": "all", "nu": 0.01, "beta": 1.25, "beta_per_class": False}, num_classes=CLASSES
    )
    out = loss(x.requires_grad_(), y)
    out.backward()
    assert loss.loss.beta.dtype == torch.float32 and loss.loss.beta.grad is not None
    triplets = ref.all_triplets(y.tolist(), y.tolist(), True)
    assert out.item() == pytest.approx(ref.margin_loss(x.detach(), y, triplets, 0.2, 1.25) + 0.0125, rel=1e-9)


def test_margin_reference_set(dtype):
    x, y = make_batch(dtype)
    memory, memory_y = make_batch(dtype, seed=8, per_class=2)
    _, value = evaluate("margin", x, y, {"mining": "all", "beta": 1.25}, memory, memory_y)
    q, r = ref.units(x), ref.units(memory)
    terms = []
    for a, p, n in ref.all_triplets(y.tolist(), memory_y.tolist(), False):
        terms += [ref.hinge(ref.dist(q[a], r[p]) - 1.25 + 0.2), ref.hinge(1.25 - ref.dist(q[a], r[n]) + 0.2)]
    assert value == pytest.approx(sum(terms) / sum(t > 0 for t in terms), **close(dtype))
