"""Proxy manifold: orthonormal, deterministic bases and the point–proxy similarity of the proxy's own piece."""

import numpy as np
import pytest
import torch

from dmlkit.errors import ConfigError
from dmlkit.methods.pl_manifold.proxies import ProxyManifold


def test_initialisation_and_bases_are_orthonormal():
    proxies = ProxyManifold(dim=8, num_proxies=5, rank=3, generator=torch.Generator().manual_seed(0))
    assert proxies.locations.shape == (5, 8) and proxies.raw_bases.shape == (5, 8, 3)
    assert proxies.locations.dtype == proxies.raw_bases.dtype == torch.float32
    torch.testing.assert_close(proxies.locations.norm(dim=1), torch.ones(5))
    u = proxies.bases()
    torch.testing.assert_close(u.transpose(1, 2) @ u, torch.eye(3).expand(5, 3, 3), atol=1e-5, rtol=0)
    # same span as the raw bases, and the sign fix: every column has a positive component along its raw column
    raw = proxies.raw_bases.detach()
    torch.testing.assert_close(u @ u.transpose(1, 2) @ raw, raw, atol=1e-5, rtol=1e-5)
    assert ((u * raw).sum(1) > 0).all()
    q, r = torch.linalg.qr(raw)
    torch.testing.assert_close(u, q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None], atol=1e-5, rtol=0)
    # deterministic from the generator and continuous in the raw bases
    again = ProxyManifold(dim=8, num_proxies=5, rank=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.bases(), u)
    with torch.no_grad():
        again.raw_bases.add_(1e-4 * torch.randn_like(raw))
    assert (again.bases() - u).abs().max() < 1e-2


def test_similarity_to_matches_a_reference_loop():
    gen = torch.Generator().manual_seed(1)
    proxies = ProxyManifold(dim=4, num_proxies=3, rank=2, generator=gen)
    x = torch.randn(6, 4, generator=gen)
    loc, u = proxies.locations.detach().double().numpy(), proxies.bases().detach().double().numpy()
    o, p = np.zeros((6, 3)), np.zeros((6, 3))
    for i, point in enumerate(x.double().numpy()):
        for k in range(3):
            v = point - loc[k]
            in_plane = u[k] @ (u[k].T @ v)
            o[i, k], p[i, k] = np.linalg.norm(v - in_plane), np.linalg.norm(in_plane)
    raw = proxies.similarity_to(x, n_alpha=3.0, n_beta=0.5, distance_scale="none")
    np.testing.assert_allclose(raw.detach().numpy(), (1 + o / 2) ** -3 * (1 + p) ** -0.5, rtol=1e-5)
    mean = proxies.similarity_to(x, n_alpha=3.0, n_beta=0.5, distance_scale="mean")
    o, p = o / o.mean(), p / p.mean()
    np.testing.assert_allclose(mean.detach().numpy(), (1 + o / 2) ** -3 * (1 + p) ** -0.5, rtol=1e-5)
    at_proxy = proxies.similarity_to(proxies.locations.detach(), distance_scale="none").diagonal()
    torch.testing.assert_close(at_proxy.detach(), torch.ones(3))
    assert proxies.similarity_to(x.half()).dtype == torch.float32


def test_no_proxies_and_errors():
    proxies = ProxyManifold(dim=4, num_proxies=0)
    assert proxies.num_proxies == 0 and proxies.bases().shape == (0, 4, 2)
    assert proxies.similarity_to(torch.randn(5, 4)).shape == (5, 0)
    with pytest.raises(ConfigError, match="method.num_proxies"):
        ProxyManifold(dim=4, num_proxies=-1)
    with pytest.raises(ConfigError, match="method.rank"):
        ProxyManifold(dim=4, rank=5)
    with pytest.raises(ConfigError, match="model.embedding_dim"):
        ProxyManifold(dim=0)
