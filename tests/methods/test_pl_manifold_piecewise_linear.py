"""PL-manifold pieces: orthogonal / in-plane distances in closed form, subset selection, a slow reference fit."""

import math

import numpy as np
import pytest
import torch

from dmlkit.errors import ConfigError
from dmlkit.methods.pl_manifold import piecewise_linear
from dmlkit.methods.pl_manifold.piecewise_linear import (
    fit_pieces,
    normalised_residual,
    orthogonal_and_inplane,
    orthonormal_columns,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def unit(*v):
    v = torch.tensor(v, dtype=torch.float64)
    return v / v.norm()


# ----------------------------------------------------------------------------- distances, closed forms
@pytest.mark.parametrize("device", DEVICES)
def test_line_in_3d(device):
    c, u, w = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64), unit(1, 1, 0), unit(0, 0, 1)
    anchors = torch.stack([c + 2 * u, c + 2 * u + 1.5 * w])  # on the piece; off it by 1.5
    ts, hs = [-1.0, 0.0, 2.0, 3.5], [0.0, 0.7, -2.0]
    x = torch.stack([c + t * u + h * w for t in ts for h in hs])
    bases = u[None, :, None].repeat(2, 1, 1)
    o, p = orthogonal_and_inplane(x.to(device), anchors.to(device), c.repeat(2, 1).to(device), bases.to(device))
    expected_o = torch.tensor([abs(h) for t in ts for h in hs], dtype=torch.float64)
    expected_p0 = torch.tensor([abs(t - 2) for t in ts for h in hs], dtype=torch.float64)
    expected_p1 = torch.tensor([math.hypot(t - 2, 1.5) for t in ts for h in hs], dtype=torch.float64)
    torch.testing.assert_close(o.cpu(), torch.stack([expected_o, expected_o], 1))
    torch.testing.assert_close(p.cpu(), torch.stack([expected_p0, expected_p1], 1))
    assert o.dtype == torch.float64


@pytest.mark.parametrize("device", DEVICES)
def test_plane_in_3d(device):
    u1, u2 = unit(1, 1, 1), unit(1, -1, 0)
    normal = torch.linalg.cross(u1, u2)
    c = torch.tensor([0.3, 0.1, -0.4], dtype=torch.float64)
    bases = torch.stack([u1, u2], 1)[None]  # (1, 3, 2)
    anchor = (c + 0.5 * u1 - 1.0 * u2)[None]
    coords = [(0.0, 0.0, 0.0), (0.5, -1.0, 0.0), (2.0, 3.0, 0.0), (1.0, 1.0, -0.8), (-0.5, 2.0, 1.2)]
    x = torch.stack([c + a * u1 + b * u2 + h * normal for a, b, h in coords]).float()  # fp32 path
    o, p = orthogonal_and_inplane(
        x.to(device), anchor.float().to(device), c[None].float().to(device), bases.float().to(device)
    )
    expected_o = torch.tensor([abs(h) for _, _, h in coords])
    expected_p = torch.tensor([math.hypot(a - 0.5, b + 1.0) for a, b, _ in coords])
    torch.testing.assert_close(o[:, 0].cpu(), expected_o, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(p[:, 0].cpu(), expected_p, atol=1e-5, rtol=1e-5)
    assert o[:3, 0].abs().max() < 1e-5  # points on the piece


def test_distances_half_input_chunks_and_zero_gradients(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    x, anchors, centres = (torch.randn(n, 6, generator=gen) for n in (7, 5, 5))
    bases = torch.linalg.qr(torch.randn(5, 6, 2, generator=gen)).Q
    o, p = orthogonal_and_inplane(x, anchors, centres, bases)
    o16, p16 = orthogonal_and_inplane(x.half(), anchors.half(), centres.half(), bases.half())
    assert o16.dtype == p16.dtype == torch.float32
    torch.testing.assert_close(o16, o, atol=2e-2, rtol=2e-2)
    monkeypatch.setattr(piecewise_linear, "_CHUNK_ELEMENTS", 13)  # one row per chunk
    o_chunked, p_chunked = orthogonal_and_inplane(x, anchors, centres, bases)
    torch.testing.assert_close(o_chunked, o)
    torch.testing.assert_close(p_chunked, p)
    # a point at the anchor on its own piece: o = p = 0, gradients 0 (not NaN)
    point = centres[:1].clone().requires_grad_(True)
    o0, p0 = orthogonal_and_inplane(point, centres[:1], centres[:1], bases[:1])
    (o0 + p0).sum().backward()
    assert o0.item() == p0.item() == 0.0 and torch.isfinite(point.grad).all()


def test_orthonormal_columns_is_the_sign_fixed_qr_and_survives_dependent_columns():
    gen = torch.Generator().manual_seed(4)
    a = torch.randn(20, 9, 3, generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None]
    torch.testing.assert_close(orthonormal_columns(a), q)
    # zero, repeated and parallel columns: still orthonormal, finite gradients
    b = torch.stack([a[0, :, 0], 2 * a[0, :, 0], torch.zeros(9, dtype=torch.float64)], -1)[None].requires_grad_(True)
    u = orthonormal_columns(b)
    torch.testing.assert_close(u.transpose(1, 2) @ u, torch.eye(3, dtype=torch.float64)[None])
    torch.testing.assert_close(u[0, :, 0], a[0, :, 0] / a[0, :, 0].norm())
    u.sum().backward()
    assert torch.isfinite(b.grad).all()
    # nearly parallel columns in fp32: one Gram–Schmidt pass would leave an error of about eps·1e4
    v, w = torch.randn(2, 50, generator=gen)
    u = orthonormal_columns(torch.stack([v, v + 1e-4 * w], -1)[None])
    assert (u.transpose(1, 2) @ u - torch.eye(2)).abs().max() < 1e-5
    zero = orthonormal_columns(torch.zeros(2, 4, 2))
    torch.testing.assert_close(zero.transpose(1, 2) @ zero, torch.eye(2).expand(2, 2, 2))


# ----------------------------------------------------------------------------- subset selection
def line_with_offline_point(sine):
    """0: origin; 1, 2: ±1 on the x-axis; 3: at 1.5 from the origin, angle asin(sine) off the axis; 4, 5 on the axis."""
    angle = math.asin(sine)
    return torch.tensor(
        [
            [0.0, 0.0, 0.0],
            [1.0, 0.0, 0.0],
            [-1.0, 0.0, 0.0],
            [1.5 * math.cos(angle), 1.5 * math.sin(angle), 0.0],
            [3.0, 0.0, 0.0],
            [-3.2, 0.0, 0.0],
        ]
    )


@pytest.mark.parametrize("device", DEVICES)
def test_growth_stops_exactly_at_the_threshold(device):
    threshold = 0.3
    below = fit_pieces(line_with_offline_point(threshold - 1e-3).to(device), rank=1, max_size=10, threshold=threshold)
    above = fit_pieces(line_with_offline_point(threshold + 1e-3).to(device), rank=1, max_size=10, threshold=threshold)
    assert below.members[0].tolist() == [True] * 6  # the off-line point joins; the line points after it too
    assert below.sizes[0].item() == 6
    assert above.members[0].tolist() == [True, True, True, False, False, False]  # stops for good at point 3
    assert above.sizes[0].item() == 3
    torch.testing.assert_close(above.centres[0].cpu(), torch.zeros(3))
    projector = above.bases[0] @ above.bases[0].T
    torch.testing.assert_close(projector.cpu(), torch.diag(torch.tensor([1.0, 0.0, 0.0])), atol=1e-6, rtol=0)
    # the candidate's normalised residual w.r.t. that piece is the sine of its angle
    x = line_with_offline_point(threshold + 1e-3).to(device)
    r = normalised_residual(x[3:4], above.centres[:1], above.bases[:1])
    assert r.item() == pytest.approx(threshold + 1e-3, abs=1e-6)


def test_max_size_is_respected_and_members_include_self():
    x = line_with_offline_point(0.0)  # every point on one line: all candidates accepted
    pieces = fit_pieces(x, rank=1, max_size=4, threshold=0.3)
    assert pieces.sizes.tolist() == [4] * 6
    assert pieces.members[0].tolist() == [True, True, True, True, False, False]
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(25, 5, generator=gen)
    for max_size, threshold in [(3, 0.0), (6, 0.5), (8, 1.0), (40, 1.0)]:
        pieces = fit_pieces(x, rank=2, max_size=max_size, threshold=threshold)
        assert pieces.members.diagonal().all()
        assert (pieces.members.sum(1) == pieces.sizes).all()
        assert (pieces.sizes <= min(max_size, 25)).all() and (pieces.sizes >= 3).all()
        if threshold >= 1.0:
            assert (pieces.sizes == min(max_size, 25)).all()


def test_without_subset_selection_every_point_takes_its_max_size_nearest():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(20, 4, generator=gen)
    pieces = fit_pieces(x, rank=2, max_size=7, threshold=0.0, subset_selection=False)
    assert (pieces.sizes == 7).all()
    nearest = torch.cdist(x, x).topk(7, dim=1, largest=False).indices
    expected = torch.zeros(20, 20, dtype=torch.bool).scatter_(1, nearest, True)
    assert torch.equal(pieces.members, expected)
    with_selection = fit_pieces(x, rank=2, max_size=7, threshold=0.0)
    assert (with_selection.sizes == 3).all()  # threshold 0: nothing off a plane through 3 points joins


def test_degenerate_members_still_give_orthonormal_bases():
    x = torch.cat([line_with_offline_point(0.0), line_with_offline_point(0.0)])  # collinear, every point twice
    pieces = fit_pieces(x, rank=2, max_size=5, threshold=0.3)
    eye = torch.eye(2).expand(len(x), 2, 2)
    torch.testing.assert_close(pieces.bases.transpose(1, 2) @ pieces.bases, eye, atol=1e-5, rtol=0)
    assert torch.isfinite(pieces.centres).all()
    assert fit_pieces(torch.zeros(3, 2), rank=1, max_size=2).members.diagonal().all()  # self first among copies
    tiny = fit_pieces(torch.randn(2, 5), rank=3, max_size=10)  # fewer points than the rank
    assert tiny.bases.shape == (2, 5, 3) and tiny.sizes.tolist() == [2, 2]
    torch.testing.assert_close(tiny.bases.transpose(1, 2) @ tiny.bases, torch.eye(3).expand(2, 3, 3), atol=1e-5, rtol=0)


def reference_pieces(x, rank, max_size, threshold):
    """One point at a time, in float64 numpy; also the smallest |residual − threshold| seen."""
    x = x.double().numpy()
    n = len(x)
    size = min(max_size, n)
    members, projectors, centres, first, margin = [], [], [], [], math.inf
    for i in range(n):
        others = sorted((j for j in range(n) if j != i), key=lambda j: (np.linalg.norm(x[j] - x[i]), j))
        order = [i, *others][:size]
        chosen = order[: rank + 1]

        def fit(points):
            centre = x[points].mean(0)
            vt = np.linalg.svd(x[points] - centre)[2]
            return centre, vt[:rank].T

        for candidate in order[rank + 1 :]:
            centre, basis = fit(chosen)
            v = x[candidate] - centre
            ratio = np.linalg.norm(v - basis @ (basis.T @ v)) / np.linalg.norm(v)
            margin = min(margin, abs(ratio - threshold))
            if ratio > threshold:
                break
            chosen.append(candidate)
        centre, basis = fit(chosen)
        members.append(sorted(chosen))
        projectors.append(basis @ basis.T)
        centres.append(centre)
        first.append(basis[:, 0])
    return members, np.stack(projectors), np.stack(centres), np.stack(first), margin


def test_fit_pieces_matches_a_slow_reference():
    gen = torch.Generator().manual_seed(3)
    # noisy patches of random planes in 6-D, so neighbourhoods grow to different sizes
    x = torch.cat(
        [
            torch.randn(1, 6, generator=gen) * 3
            + torch.randn(8, 2, generator=gen) @ torch.randn(2, 6, generator=gen)
            + 0.1 * torch.randn(8, 6, generator=gen)
            for _ in range(5)
        ]
    )
    members, projectors, centres, first, margin = reference_pieces(x, rank=2, max_size=8, threshold=0.35)
    assert margin > 1e-4  # no candidate sits so close to the threshold that rounding could decide it
    pieces = fit_pieces(x, rank=2, max_size=8, threshold=0.35)
    assert len(set(pieces.sizes.tolist())) > 2
    assert [torch.nonzero(row).flatten().tolist() for row in pieces.members] == members
    assert pieces.sizes.tolist() == [len(m) for m in members]
    got = (pieces.bases @ pieces.bases.transpose(1, 2)).double().numpy()
    np.testing.assert_allclose(got, projectors, atol=1e-4)
    np.testing.assert_allclose(pieces.centres.double().numpy(), centres, atol=1e-5)
    alignment = np.abs((pieces.bases[:, :, 0].double().numpy() * first).sum(1))  # columns by decreasing variance
    np.testing.assert_allclose(alignment, 1.0, atol=1e-4)


def test_fit_pieces_dtypes_and_errors():
    x = torch.randn(10, 4)
    assert fit_pieces(x.half()).centres.dtype == torch.float32
    assert fit_pieces(x.double()).bases.dtype == torch.float64
    for kwargs, key in [
        ({"rank": 0}, "method.rank"),
        ({"rank": 5}, "method.rank"),
        ({"rank": 2, "max_size": 2}, "method.max_size"),
        ({"threshold": -0.1}, "method.threshold"),
        ({"subset_selection": "yes"}, "method.subset_selection"),
    ]:
        with pytest.raises(ConfigError, match=key):
            fit_pieces(x, **kwargs)
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        fit_pieces(torch.randn(3))


def test_local_residual_scale_stops_at_the_threshold():
    """``residual_scale='local'``: a candidate joins while its distance off the piece is at most ε times the
    point's mean distance to its max_size − 1 nearest points."""
    line = torch.tensor([[float(t), 0.0, 0.0] for t in range(4)], dtype=torch.float64)
    off = torch.tensor([[4.0, 1.0, 0.0]], dtype=torch.float64)  # 1 off the line of the first 4 points
    x = torch.cat([line, off])
    scale = torch.cdist(x[:1], x)[0, 1:].mean().item()  # point 0: every other point is among its 4 nearest
    for eps, expected in ((0.99 / scale, 4), (1.01 / scale, 5)):
        pieces = fit_pieces(x, rank=1, max_size=5, threshold=eps, residual_scale="local")
        assert int(pieces.sizes[0]) == expected
