"""PL-manifold losses against slow loops; finite gradients; gradients only where the spec sends them."""

import itertools
import math

import pytest
import torch

from dmlkit.errors import ConfigError
from dmlkit.methods.pl_manifold.losses import neighbourhood_loss, point_loss, proxy_loss
from dmlkit.methods.pl_manifold.proxies import ProxyManifold


def reference_point_loss(f, s, delta):
    n, total = len(f), 0.0
    for i in range(n):
        for j in range(n):
            if i != j:
                total += (delta * (1 - s[i, j].item()) - math.dist(f[i].tolist(), f[j].tolist())) ** 2
    return total / (n * (n - 1))


def reference_proxy_loss(f, rho, s, delta):
    total = 0.0
    for i in range(len(f)):
        for k in range(len(rho)):
            total += (delta * (1 - s[i, k].item()) - math.dist(f[i].tolist(), rho[k].tolist())) ** 2
    return total / (len(f) * len(rho))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("delta", [1.0, 0.5])
def test_point_and_proxy_loss_match_loops(dtype, delta):
    gen = torch.Generator().manual_seed(0)
    f, rho = torch.randn(7, 4, generator=gen).to(dtype), torch.randn(3, 4, generator=gen).to(dtype)
    s, s_proxy = torch.rand(7, 7, generator=gen).to(dtype), torch.rand(7, 3, generator=gen).to(dtype)
    loss = point_loss(f, s, delta)
    assert loss.dtype == dtype
    assert loss.item() == pytest.approx(reference_point_loss(f, s, delta), rel=1e-5)
    assert proxy_loss(f, rho, s_proxy, delta).item() == pytest.approx(
        reference_proxy_loss(f, rho, s_proxy, delta), rel=1e-5
    )


def test_half_input_is_computed_in_fp32():
    f, s = torch.randn(5, 3).half(), torch.rand(5, 5)
    loss = point_loss(f, s)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(point_loss(f.float(), s).item(), rel=1e-6)
    rho, s_proxy = torch.randn(2, 3).half(), torch.rand(5, 2)
    assert proxy_loss(f, rho, s_proxy).dtype == torch.float32


def test_gradients_finite_with_duplicates_and_detached_inputs():
    f = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0]], requires_grad=True)  # two identical points
    s = torch.rand(3, 3, requires_grad=True)
    rho = torch.tensor([[1.0, 0.0], [0.5, 0.5]], requires_grad=True)  # a proxy on top of a point
    s_proxy = torch.rand(3, 2, requires_grad=True)
    (point_loss(f, s) + proxy_loss(f, rho, s_proxy)).backward()
    assert torch.isfinite(f.grad).all() and f.grad.abs().sum() > 0
    assert s.grad is None and rho.grad is None and s_proxy.grad is None


def test_empty_cases_stay_attached():
    f = torch.randn(1, 3, requires_grad=True)
    loss = point_loss(f, torch.ones(1, 1)) + proxy_loss(f, torch.zeros(0, 3), torch.zeros(1, 0))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(f.grad, torch.zeros(1, 3))
    proxies = ProxyManifold(dim=3, num_proxies=0)
    assert neighbourhood_loss(torch.randn(4, 3), proxies, torch.zeros(4, 0)).item() == 0.0
    with pytest.raises(ConfigError, match="method.delta"):
        point_loss(f, torch.ones(1, 1), delta=0.0)
    with pytest.raises(ConfigError, match="method.top_k"):
        neighbourhood_loss(torch.randn(4, 3), proxies, torch.zeros(4, 0), top_k=0)


def reference_neighbourhood_loss(x, locations, bases, similarity, top_k):
    total, count = 0.0, 0
    for k in range(len(locations)):
        order = sorted(range(len(x)), key=lambda i: -similarity[i, k].item())[:top_k]
        u = bases[k]
        for i in order:
            v = x[i] - locations[k]
            residual = v - u @ (u.T @ v)
            total += v.pow(2).sum().item() + residual.pow(2).sum().item()
            count += 1
    return total / count


def test_neighbourhood_loss_matches_a_loop_and_trains_only_the_proxies():
    gen = torch.Generator().manual_seed(1)
    proxies = ProxyManifold(dim=5, num_proxies=4, rank=2, generator=gen)
    x = torch.randn(12, 5, generator=gen, requires_grad=True)
    similarity = torch.rand(12, 4, generator=gen, requires_grad=True)
    loss = neighbourhood_loss(x, proxies, similarity, top_k=3)
    expected = reference_neighbourhood_loss(
        x.detach(), proxies.locations.detach(), proxies.bases().detach(), similarity, 3
    )
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert x.grad is None and similarity.grad is None
    assert proxies.locations.grad.abs().sum() > 0 and proxies.raw_bases.grad.abs().sum() > 0
    # top_k larger than the batch: every point
    all_points = neighbourhood_loss(x, proxies, similarity, top_k=50)
    assert all_points.item() == pytest.approx(
        reference_neighbourhood_loss(x.detach(), proxies.locations.detach(), proxies.bases().detach(), similarity, 12),
        rel=1e-5,
    )


def test_a_few_gradient_steps_reduce_the_neighbourhood_loss():
    gen = torch.Generator().manual_seed(2)
    proxies = ProxyManifold(dim=6, num_proxies=5, rank=2, generator=gen)
    x = torch.randn(20, 6, generator=gen)
    similarity = proxies.similarity_to(x).detach()
    losses = []
    for _ in range(10):  # plain gradient descent (torch.optim's first import alone takes a second)
        proxies.zero_grad()
        loss = neighbourhood_loss(x, proxies, similarity, top_k=4)
        loss.backward()
        with torch.no_grad():
            for parameter in proxies.parameters():
                parameter -= 0.1 * parameter.grad
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    assert all(b < a for a, b in itertools.pairwise(losses))
    u = proxies.bases()
    torch.testing.assert_close(u.transpose(1, 2) @ u, torch.eye(2).expand(5, 2, 2), atol=1e-5, rtol=0)
