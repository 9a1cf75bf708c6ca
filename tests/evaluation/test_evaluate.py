"""evaluate_embeddings: metric keys, counts, query/gallery mode, and consistency with the parts."""

import pytest
import torch

from dmlkit.evaluation import (
    ALL_METRICS,
    evaluate_embeddings,
    kmeans,
    map_at_r,
    nmi,
    pairwise_f1,
    r_precision,
    recall_at_k,
    retrieve,
)
from dmlkit.evaluation.clustering import EVAL_RESTARTS


def clustered(n_classes=12, seed=0, noise=0.6):
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(1, 7, (n_classes,), generator=g)
    labels = torch.repeat_interleave(torch.arange(n_classes), sizes)
    centres = torch.randn(n_classes, 8, generator=g)
    return centres[labels] + noise * torch.randn(len(labels), 8, generator=g), labels


def test_keys_counts_and_timings():
    x, y = clustered()
    report = evaluate_embeddings(x, y, recall_at=(1, 2, 4, 8))
    assert list(report.metrics) == ["recall@1", "recall@2", "recall@4", "recall@8", "nmi", "f1", "map@r", "r_precision"]
    assert all(isinstance(v, float) for v in report.metrics.values())
    lone = int((torch.bincount(y) == 1).sum())
    assert report.counts == {
        "num_queries": len(y),
        "num_gallery": len(y),
        "k": max(8, int(torch.bincount(y).max()) - 1),
        "lone_queries": lone,
        "num_clusters": 12,
    }
    assert lone > 0 and report.results.num_lone == lone
    assert set(report.timings) == {"knn", "retrieval_metrics", "kmeans", "clustering_metrics", "total"}


def test_equals_its_parts():
    x, y = clustered(seed=1)
    report = evaluate_embeddings(x, y, recall_at=(1, 4), seed=3)
    res = retrieve(x, y, k=report.results.k)
    assert report.metrics["recall@1"] == recall_at_k(res, [1])[1]
    assert report.metrics["map@r"] == map_at_r(res) and report.metrics["r_precision"] == r_precision(res)
    assign = kmeans(x, 12, seed=3, restarts=EVAL_RESTARTS)  # the evaluation keeps the best of its restarts
    assert report.metrics["nmi"] == nmi(y, assign) and report.metrics["f1"] == pairwise_f1(y, assign)


def test_subsets_of_metrics():
    x, y = clustered()
    assert list(evaluate_embeddings(x, y, metrics=("map@r",)).metrics) == ["map@r"]
    only_clusters = evaluate_embeddings(x, y, metrics=("f1", "nmi"))
    assert list(only_clusters.metrics) == ["nmi", "f1"] and only_clusters.results is None
    recall_only = evaluate_embeddings(x, y, recall_at=(3,), metrics=("recall",))
    assert list(recall_only.metrics) == ["recall@3"] and recall_only.results.k == 3  # no more than needed
    assert set(ALL_METRICS) == {"recall", "nmi", "f1", "map@r", "r_precision"}


def test_query_gallery_mode_clusters_the_union():
    x, y = clustered(seed=2)
    q, qy, g, gy = x[::2], y[::2], x[1::2], y[1::2]
    report = evaluate_embeddings(q, qy, g, gy, recall_at=(1, 2), metric="cosine", backend="torch")
    assert report.counts["num_queries"] == len(qy) and report.counts["num_gallery"] == len(gy)
    assert report.counts["num_clusters"] == len(torch.unique(y))
    assert not report.results.query_is_gallery and report.results.metric == "cosine"
    res = retrieve(q, qy, g, gy, k=report.results.k, metric="cosine")
    assert report.metrics["map@r"] == map_at_r(res)


def test_bad_arguments():
    x, y = clustered()
    with pytest.raises(ValueError, match="unknown metrics"):
        evaluate_embeddings(x, y, metrics=("accuracy",))
    with pytest.raises(ValueError, match="pass both gallery_emb and gallery_labels"):
        evaluate_embeddings(x, y, x)
    with pytest.raises(ValueError, match="must be integers"):
        evaluate_embeddings(x, y.float() + 0.5)
    with pytest.raises(ValueError, match="query embeddings but"):
        evaluate_embeddings(x, y[:-1], metrics=("recall",))
