"""The minibatch magnet loss against a slow reference loop (methods.md §2(c), (g))."""

import math

import pytest
import torch

from dmlkit.losses import build_loss
from dmlkit.losses.magnet import magnet_loss


def reference(x, cluster, labels, alpha, eps=1e-8):
    """Per-example losses and σ̂² from the formulas, with Python floats and loops."""
    x = [[float(v) for v in row] for row in x]
    cluster, labels = [int(c) for c in cluster], [int(y) for y in labels]
    ids = sorted(set(cluster))
    means, cls = {}, {}
    for c in ids:
        rows = [x[n] for n in range(len(x)) if cluster[n] == c]
        means[c] = [sum(col) / len(rows) for col in zip(*rows, strict=True)]
        cls[c] = labels[cluster.index(c)]

    def sq(a, b):
        return sum((p - q) ** 2 for p, q in zip(a, b, strict=True))

    variance = sum(sq(x[n], means[cluster[n]]) for n in range(len(x))) / (len(x) - 1)
    v = max(variance, eps)
    losses = []
    for n in range(len(x)):
        others = [c for c in ids if cls[c] != labels[n]]
        if not others:
            losses.append(None)
            continue
        # -log(num / den) with num = exp(-a_own - alpha), den = sum_c exp(-a_c), in log space
        log_num = -sq(x[n], means[cluster[n]]) / (2 * v) - alpha
        logits = [-sq(x[n], means[c]) / (2 * v) for c in others]
        top = max(logits)
        log_den = top + math.log(sum(math.exp(t - top) for t in logits))
        losses.append(max(0.0, log_den - log_num))
    valid = [value for value in losses if value is not None]
    return [0.0 if value is None else value for value in losses], sum(valid) / len(valid), variance


def batch(seed, m=4, d=3, dim=5, classes=(0, 0, 1, 2)):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m * d, dim, generator=g, dtype=torch.float64)
    cluster = torch.arange(m).repeat_interleave(d)
    labels = torch.tensor(classes).repeat_interleave(d)
    return x, cluster, labels


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("alpha", [0.0, 1.0, 1.5])
def test_equals_reference_loop(dtype, alpha):
    x, cluster, labels = batch(0)
    xin = x.to(dtype)
    per_ref, loss_ref, var_ref = reference(xin.double(), cluster, labels, alpha)
    out = magnet_loss(xin, cluster, labels, alpha)
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    assert out.loss.item() == pytest.approx(loss_ref, rel=tol, abs=tol)
    assert out.per_example.tolist() == pytest.approx(per_ref, rel=tol, abs=tol)
    assert out.variance.item() == pytest.approx(var_ref, rel=tol)
    assert out.loss.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)


def test_variance_not_squared():
    """Scaling the embedding leaves the loss unchanged (σ² standardises); σ⁴ would not."""
    x, cluster, labels = batch(1)
    a = magnet_loss(x, cluster, labels, 1.0).loss
    b = magnet_loss(x * 7.0, cluster, labels, 1.0).loss
    assert a.item() == pytest.approx(b.item(), rel=1e-9)


def test_denominator_holds_other_classes_only():
    """Two clusters of class 0 far apart: the other class-0 cluster never enters the denominator."""
    x = torch.tensor([[0.0], [0.1], [10.0], [10.1], [0.2], [0.3]], dtype=torch.float64)
    cluster = torch.tensor([0, 0, 1, 1, 2, 2])
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    per_ref, loss_ref, _ = reference(x, cluster, labels, 1.0)
    out = magnet_loss(x, cluster, labels, 1.0)
    assert out.per_example.tolist() == pytest.approx(per_ref)
    assert out.loss.item() == pytest.approx(loss_ref)


def test_large_distances_stay_finite_with_gradients():
    x, cluster, labels = batch(2)
    x = (x * 1e4).float().requires_grad_()
    x.data[:3] += 1e5  # one cluster extremely far from the others
    out = magnet_loss(x, cluster, labels, 1.0)
    out.loss.backward()
    assert torch.isfinite(out.loss) and torch.isfinite(x.grad).all()
    # the reference ports' log(num / (den + 1e-8)) would see den == 0 here
    x2 = torch.tensor([[0.0], [0.0], [1e3], [1e3]], requires_grad=True)
    out = magnet_loss(
        x2 + torch.tensor([[0.0], [1e-3], [0.0], [1e-3]]), torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 1, 1])
    )
    assert torch.isfinite(out.loss)


def test_class_without_impostor_is_left_out():
    x = torch.tensor([[0.0], [1.0], [2.0], [3.0]], dtype=torch.float64)
    out = magnet_loss(x, torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 0, 0]))
    assert out.loss.item() == 0.0 and out.per_example.tolist() == [0.0] * 4


def test_mixed_class_cluster_is_an_error():
    with pytest.raises(ValueError, match="single class"):
        magnet_loss(torch.randn(4, 2), torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1]))


def test_unimodal_loss_by_name_uses_classes_as_clusters():
    x, _, labels = batch(3)
    loss = build_loss("magnet", {"alpha": 0.5})
    expected = reference(x, labels, labels, 0.5)[1]
    assert loss(x, labels).item() == pytest.approx(expected)
