"""Similarity quality (label purity, correlation with ground truth) and the pseudo-label baselines."""

import math

import numpy as np
import pytest
import torch

from dmlkit.errors import ConfigError
from dmlkit.methods.pl_manifold.diagnostics import pseudo_label_similarity, similarity_quality


def test_similarity_quality_hand_case():
    labels = torch.tensor([0, 0, 1, 1, 2])
    members = torch.tensor(
        [
            [1, 1, 1, 0, 0],  # others {1, 2}: 1 of 2 share label 0 → 0.5
            [1, 1, 0, 0, 0],  # others {0}: 1.0
            [0, 0, 1, 1, 1],  # others {3, 4}: 0.5
            [0, 0, 0, 1, 0],  # only itself: skipped
            [1, 0, 0, 0, 1],  # others {0}: 0.0
        ],
        dtype=torch.bool,
    )
    similarity = torch.tensor(
        [
            [1.0, 0.9, 0.2, 0.1, 0.3],
            [0.9, 1.0, 0.1, 0.2, 0.1],
            [0.2, 0.1, 1.0, 0.8, 0.4],
            [0.1, 0.2, 0.8, 1.0, 0.2],
            [0.3, 0.1, 0.4, 0.2, 1.0],
        ]
    )
    quality = similarity_quality(similarity, members, labels)
    assert quality["label_purity"] == pytest.approx((0.5 + 1.0 + 0.5 + 0.0) / 4)
    off = ~np.eye(5, dtype=bool)
    same = (labels[:, None] == labels[None, :]).numpy()
    expected = np.corrcoef(similarity.numpy()[off], same[off].astype(float))[0, 1]
    assert quality["gt_correlation"] == pytest.approx(expected)
    # the same-label indicator itself: purity 1 (of those with neighbours), correlation 1
    perfect = similarity_quality(torch.as_tensor(same).float(), torch.as_tensor(same), labels.numpy())
    assert perfect == pytest.approx({"label_purity": 1.0, "gt_correlation": 1.0})


def test_similarity_quality_degenerate_cases():
    quality = similarity_quality(torch.eye(3), torch.eye(3, dtype=torch.bool), [0, 1, 1])
    assert math.isnan(quality["label_purity"])  # every neighbourhood is only the point itself
    assert math.isnan(quality["gt_correlation"])  # constant off-diagonal similarity
    with pytest.raises(ValueError, match=r"\(n, n\)"):
        similarity_quality(torch.eye(3), torch.eye(2, dtype=torch.bool), [0, 1, 1])


def blobs():
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    labels = torch.arange(3).repeat_interleave(6)
    return centres[labels] + 0.3 * torch.randn(18, 2, generator=gen), labels


@pytest.mark.parametrize("method", ["kmeans", "hierarchical"])
def test_pseudo_labels_recover_separated_blobs(method):
    x, labels = blobs()
    similarity, members = pseudo_label_similarity(x, n_clusters=3, method=method, seed=0)
    assert members.dtype == torch.bool and similarity.dtype == torch.float32
    assert torch.equal(similarity, members.float()) and torch.equal(members, members.T)
    assert members.diagonal().all()
    # a same-cluster mask is transitive: the members of i's cluster all share i's row
    for i in range(len(x)):
        assert torch.equal(members[members[i]], members[i].expand(int(members[i].sum()), -1))
    assert torch.equal(members, labels[:, None] == labels[None, :])
    assert similarity_quality(similarity, members, labels) == pytest.approx(
        {"label_purity": 1.0, "gt_correlation": 1.0}
    )


def test_pseudo_labels_clamp_and_errors():
    x, _ = blobs()
    _, members = pseudo_label_similarity(x[:4], n_clusters=10)
    assert not (members & ~torch.eye(4, dtype=torch.bool)).any()  # 4 clusters of one point
    _, members = pseudo_label_similarity(x, n_clusters=1, method="hierarchical")
    assert members.all()
    with pytest.raises(ConfigError, match="diagnostics.method"):
        pseudo_label_similarity(x, 3, method="spectral")
    with pytest.raises(ConfigError, match="diagnostics.n_clusters"):
        pseudo_label_similarity(x, 0)
