"""Recall@K, MAP@R, R-precision, NMI and F1 by hand and against pytorch-metric-learning."""

import math

import numpy as np
import pytest
import torch
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN

from dmlkit.evaluation import evaluate_embeddings, retrieve
from dmlkit.evaluation.clustering import kmeans, nmi, pairwise_f1
from dmlkit.evaluation.results import RetrievalResults
from dmlkit.evaluation.retrieval_metrics import map_at_r, r_precision, recall_at_k


def hand_results():
    """Two queries with known rankings (query/gallery mode).

    gallery labels: [0, 0, 1, 1, 1, 2]; query A (label 0, R=2) retrieves labels 1, 0, 1, 0;
    query B (label 1, R=3) retrieves 1, 1, 0, 2, 1.
    """
    gallery = torch.tensor([0, 0, 1, 1, 1, 2])
    indices = torch.tensor([[2, 0, 3, 1, 5], [2, 3, 0, 5, 4]])
    return RetrievalResults(torch.zeros(2, 5), indices, torch.tensor([0, 1]), gallery, False)


def test_recall_by_hand():
    assert recall_at_k(hand_results(), [1, 2, 5]) == {1: 0.5, 2: 1.0, 5: 1.0}


def test_map_at_r_by_hand():
    # A: R=2, ranks 1..2 -> rel [0,1]: AP = (1/2)(1/2) = 0.25
    # B: R=3, ranks 1..3 -> rel [1,1,0]: AP = (1/3)(1 + 1) = 2/3
    assert map_at_r(hand_results()) == pytest.approx((0.25 + 2 / 3) / 2)
    # R-precision: A 1/2, B 2/3
    assert r_precision(hand_results()) == pytest.approx((0.5 + 2 / 3) / 2)


def test_lone_queries_are_left_out():
    x = torch.tensor([[0.0], [0.1], [5.0], [9.0]])
    results = retrieve(x, [0, 0, 1, 2], k=3)
    assert results.lone.tolist() == [False, False, True, True]
    assert recall_at_k(results, [1]) == {1: 1.0}
    assert map_at_r(results) == 1.0


def test_insufficient_k_raises():
    with pytest.raises(ValueError, match="only 1 were searched"):
        map_at_r(retrieve(torch.randn(6, 2), [0, 0, 0, 1, 1, 1], k=1))
    with pytest.raises(ValueError, match="Recall@4 needs 4 neighbours"):
        recall_at_k(retrieve(torch.randn(6, 2), [0, 0, 0, 1, 1, 1], k=2), [4])


def clustered(n_classes=30, dim=16, seed=0, noise=0.8):
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(1, 9, (n_classes,), generator=g)  # includes lone classes
    labels = torch.repeat_interleave(torch.arange(n_classes), sizes)
    centres = torch.randn(n_classes, dim, generator=g)
    return centres[labels] + noise * torch.randn(len(labels), dim, generator=g), labels


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_pml_accuracy_calculator(seed):
    x, y = clustered(seed=seed)
    ours = evaluate_embeddings(x, y, recall_at=(1,), metrics=("recall", "map@r", "r_precision")).metrics
    calc = AccuracyCalculator(
        include=("precision_at_1", "mean_average_precision_at_r", "r_precision"), k="max_bin_count"
    )
    pml = calc.get_accuracy(x, y)
    assert ours["recall@1"] == pytest.approx(pml["precision_at_1"], abs=1e-6)
    assert ours["map@r"] == pytest.approx(pml["mean_average_precision_at_r"], abs=1e-6)
    assert ours["r_precision"] == pytest.approx(pml["r_precision"], abs=1e-6)


def test_matches_pml_query_gallery():
    x, y = clustered(seed=4)
    q, qy, g, gy = x[::2], y[::2], x[1::2], y[1::2]
    ours = evaluate_embeddings(q, qy, g, gy, recall_at=(1,), metrics=("recall", "map@r", "r_precision")).metrics
    calc = AccuracyCalculator(
        include=("precision_at_1", "mean_average_precision_at_r", "r_precision"),
        k="max_bin_count",
        knn_func=CustomKNN(LpDistance(normalize_embeddings=False)),
    )
    pml = calc.get_accuracy(q, qy, g, gy, ref_includes_query=False)
    assert ours["recall@1"] == pytest.approx(pml["precision_at_1"], abs=1e-6)
    assert ours["map@r"] == pytest.approx(pml["mean_average_precision_at_r"], abs=1e-6)


def test_pairwise_f1_and_nmi_by_hand():
    labels = np.array([0, 0, 0, 1, 1, 2])
    clusters = np.array([0, 0, 1, 1, 1, 1])
    # same-cluster pairs: C(2,2)+C(4,2)=7; same-class pairs: C(3,2)+C(2,2)=4; both: (0,1),(3,4) = 2
    p, r = 2 / 7, 2 / 4
    assert pairwise_f1(labels, clusters) == pytest.approx(2 * p * r / (p + r))
    assert pairwise_f1(labels, labels) == 1.0
    assert nmi(labels, labels) == pytest.approx(1.0)
    # NMI from its definition: 2 I / (H(labels) + H(clusters))
    joint = np.histogram2d(labels, clusters, bins=(3, 2))[0] / 6
    pl, pc = joint.sum(1), joint.sum(0)
    mi = sum(joint[i, j] * math.log(joint[i, j] / (pl[i] * pc[j])) for i in range(3) for j in range(2) if joint[i, j])
    h = -sum(v * math.log(v) for v in pl) - sum(v * math.log(v) for v in pc)
    assert nmi(labels, clusters) == pytest.approx(2 * mi / h)


@pytest.mark.parametrize(("backend", "least"), [("sklearn", 0.99), ("faiss", 0.75)])
def test_kmeans_recovers_separated_clusters(backend, least):
    """k-means++ (sklearn) recovers separated clusters; faiss's random init may merge a few."""
    x, y = clustered(n_classes=6, noise=0.01, seed=2)
    assign = kmeans(x, 6, seed=0, backend=backend)
    assert nmi(y.numpy(), assign) > least
    assert np.array_equal(assign, kmeans(x, 6, seed=0, backend=backend))  # seeded


def test_evaluate_keys_and_counts():
    x, y = clustered(seed=3)
    report = evaluate_embeddings(x, y, recall_at=(1, 2, 4, 8))
    assert list(report.metrics) == ["recall@1", "recall@2", "recall@4", "recall@8", "map@r", "r_precision", "nmi", "f1"]
    assert report.counts["lone_queries"] == int((torch.bincount(y) == 1).sum())
    assert set(report.timings) == {"knn", "retrieval_metrics", "kmeans"}
    with pytest.raises(ValueError, match="unknown metrics"):
        evaluate_embeddings(x, y, metrics=("accuracy",))
