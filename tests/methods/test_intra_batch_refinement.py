"""The MPN test-time refinement ("pseudo test"): k-reciprocal groups against a slow loop, batched MPN."""

import numpy as np
import pytest
import torch

from dmlkit.errors import ConfigError
from dmlkit.methods.intra_batch import IntraBatchMethod, MessagePassingNetwork
from dmlkit.methods.intra_batch.refinement import k_reciprocal_groups, refine_embeddings


def slow_groups(x: np.ndarray, k1: int, size: int) -> np.ndarray:
    """The k-reciprocal expansion written out from its definition, with full distance sorts."""
    dist = ((x[:, None] - x[None]) ** 2).sum(-1)
    order = np.argsort(dist, axis=1, kind="stable")

    def reciprocal(i, k):
        return [j for j in order[i, : k + 1] if i in order[j, : k + 1]]

    half = int(np.around(k1 / 2))
    out = []
    for i in range(len(x)):
        r = reciprocal(i, k1)
        expansion = set(r)
        for c in r:
            rc = reciprocal(c, half)
            if len(set(rc) & set(r)) > 2 / 3 * len(rc):
                expansion |= set(rc)
        others = sorted(expansion - {i}, key=lambda j: dist[i, j])[: size - 1]
        group = [i, *others]
        group += [j for j in order[i] if j not in group][: size - len(group)]
        out.append(group)
    return np.array(out)


@pytest.mark.parametrize(("k1", "size"), [(6, 4), (10, 11), (3, 4)])
def test_groups_match_the_definition(k1, size):
    x = np.random.default_rng(k1).normal(size=(50, 5))
    got = k_reciprocal_groups(torch.tensor(x, dtype=torch.float32), k1, size)
    assert got.shape == (50, size) and (got[:, 0] == np.arange(50)).all()
    assert (got == slow_groups(x, k1, size)).all()
    assert all(len(set(row)) == size for row in got)


def test_groups_stay_inside_separated_clusters():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(20, 3)), rng.normal(size=(20, 3)) + 50])
    groups = k_reciprocal_groups(torch.tensor(x, dtype=torch.float32), k1=8, group_size=6)
    side = np.arange(40) >= 20
    assert (side[groups] == side[:, None]).all()


def test_bad_sizes_are_refused():
    x = torch.randn(10, 4)
    with pytest.raises(ValueError, match="k1"):
        k_reciprocal_groups(x, k1=10)
    with pytest.raises(ValueError, match="group_size"):
        k_reciprocal_groups(x, k1=3, group_size=5)


@pytest.mark.parametrize("concat", [False, True])
def test_refinement_equals_one_graph_at_a_time(concat):
    torch.manual_seed(0)
    mpn = MessagePassingNetwork(8, 3, layers=2, heads=2, concat=concat).train()
    x = torch.nn.functional.normalize(torch.randn(30, 8), dim=1)
    refined = refine_embeddings(mpn, x, k1=5, group_size=4, chunk=7)
    assert mpn.training  # mode restored
    mpn.eval()
    groups = k_reciprocal_groups(x, 5, 4)
    with torch.no_grad():
        for i in (0, 13, 29):
            outs = [torch.nn.functional.normalize(h[0], dim=0) for h in mpn.layer_outputs(x[groups[i]])]
            expected = torch.cat(outs) if concat else outs[-1]
            assert torch.allclose(refined[i], expected, atol=1e-6)
    assert refined.shape == (30, 16 if concat else 8)


def test_refinement_is_refused_for_query_gallery_splits():
    IntraBatchMethod(num_classes=3, embedding_dim=8, heads=2, test_refinement=True)  # leave-one-out: fine
    with pytest.raises(ConfigError, match="method.test_refinement"):
        IntraBatchMethod(num_classes=3, embedding_dim=8, heads=2, test_refinement=True, query_gallery=True)
    with pytest.raises(ConfigError, match="method.refinement_group"):
        IntraBatchMethod(num_classes=3, embedding_dim=8, heads=2, refinement_k1=3, refinement_group=5)
