"""k-means, NMI and pairwise F1: worked examples, definitions and brute-force pair counting."""

import itertools
import math

import numpy as np
import pytest
import torch

from dmlkit.evaluation.clustering import kmeans, nmi, pairwise_f1, pairwise_scores


def test_pairwise_scores_worked_example():
    labels = [0, 0, 0, 1, 1, 2]
    clusters = [0, 0, 1, 1, 1, 1]
    # same-cluster pairs: C(2,2) + C(4,2) = 1 + 6 = 7; same-class pairs: C(3,2) + C(2,2) = 4;
    # both: (0,1) and (3,4) = 2  ->  precision 2/7, recall 2/4, F1 = 2·(2/7)(1/2) / (2/7 + 1/2) = 4/11
    p, r, f1 = pairwise_scores(labels, clusters)
    assert (p, r) == pytest.approx((2 / 7, 1 / 2)) and f1 == pytest.approx(4 / 11)
    assert pairwise_f1(labels, clusters) == pytest.approx(4 / 11)
    assert pairwise_f1(labels, labels) == 1.0
    assert pairwise_scores([0, 1, 2], [0, 0, 0]) == (0.0, 0.0, 0.0)  # no same-class pair at all


def brute_force_f1(labels, clusters):
    pairs = list(itertools.combinations(range(len(labels)), 2))
    same_class = {(i, j) for i, j in pairs if labels[i] == labels[j]}
    same_cluster = {(i, j) for i, j in pairs if clusters[i] == clusters[j]}
    tp = len(same_class & same_cluster)
    p, r = tp / len(same_cluster), tp / len(same_class)
    return 2 * p * r / (p + r) if tp else 0.0


@pytest.mark.parametrize("seed", range(4))
def test_pairwise_f1_equals_pair_enumeration(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 7, 80)
    clusters = rng.choice([-3, 5, 11, 40], 80)  # arbitrary cluster ids
    assert pairwise_f1(labels, clusters) == pytest.approx(brute_force_f1(labels, clusters))


def test_nmi_from_its_definition():
    labels = np.array([0, 0, 0, 1, 1, 2])
    clusters = np.array([0, 0, 1, 1, 1, 1])
    joint = np.zeros((3, 2))
    for a, b in zip(labels, clusters, strict=True):
        joint[a, b] += 1 / 6
    pl, pc = joint.sum(1), joint.sum(0)
    mi = sum(joint[i, j] * math.log(joint[i, j] / (pl[i] * pc[j])) for i in range(3) for j in range(2) if joint[i, j])
    h = -sum(v * math.log(v) for v in pl) - sum(v * math.log(v) for v in pc)
    assert nmi(labels, clusters) == pytest.approx(2 * mi / h)
    assert nmi(labels, labels) == pytest.approx(1.0)
    assert nmi(torch.tensor(labels), torch.tensor([5, 5, 7, 7, 7, 7])) == pytest.approx(2 * mi / h)


def blobs(n_classes=6, per_class=15, noise=0.01, seed=2):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    centres = torch.randn(n_classes, 8, generator=g) * 3
    return centres[labels] + noise * torch.randn(len(labels), 8, generator=g), labels.numpy()


@pytest.mark.parametrize("backend", ["sklearn", "faiss", "auto"])
def test_kmeans_recovers_separated_clusters_deterministically(backend):
    x, y = blobs()
    assign = kmeans(x, 6, seed=0, backend=backend)
    assert assign.shape == (len(y),) and assign.dtype == np.int64
    assert nmi(y, assign) > 0.99
    assert np.array_equal(assign, kmeans(x, 6, seed=0, backend=backend))


def test_the_backends_give_one_clustering_of_overlapping_classes():
    """The same seeding and Lloyd's iterations: NMI and F1 do not depend on which library is installed
    (with the old random start of faiss, NMI differed by up to 0.09 at 24k images)."""
    x, y = blobs(n_classes=60, per_class=12, noise=1.5, seed=3)
    by = {b: kmeans(x, 60, seed=0, backend=b, restarts=2) for b in ("sklearn", "faiss")}
    assert nmi(by["sklearn"], by["faiss"]) > 0.999  # the same partition (up to the clusters' numbering)
    assert nmi(y, by["sklearn"]) == pytest.approx(nmi(y, by["faiss"]), abs=1e-3)
    assert pairwise_f1(y, by["sklearn"]) == pytest.approx(pairwise_f1(y, by["faiss"]), abs=1e-3)


def test_restarts_keep_the_clustering_of_lowest_inertia():
    x, _ = blobs(n_classes=40, per_class=8, noise=2.0, seed=4)
    points = x.numpy()

    def inertia(assign):
        return sum(((points[assign == c] - points[assign == c].mean(0)) ** 2).sum() for c in np.unique(assign))

    single = [inertia(kmeans(x, 40, seed=s)) for s in range(3)]
    assert inertia(kmeans(x, 40, seed=0, restarts=3)) == pytest.approx(min(single), rel=1e-5)


def test_kmeans_checks_arguments():
    with pytest.raises(ValueError, match="n_clusters=5 must be between 1 and the number of points"):
        kmeans(torch.randn(4, 2), 5)
    with pytest.raises(ValueError, match="backend must be"):
        kmeans(torch.randn(4, 2), 2, backend="scipy")
    with pytest.raises(ValueError, match="restarts must be >= 1"):
        kmeans(torch.randn(4, 2), 2, restarts=0)
