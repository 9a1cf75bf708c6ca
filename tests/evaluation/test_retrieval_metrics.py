"""Recall@K, MAP@R and R-precision: worked examples, a per-query reference loop, and pytorch-metric-learning."""

import pytest
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

from dmlkit.evaluation import evaluate_embeddings, map_at_r, r_precision, recall_at_k, required_k, retrieve
from dmlkit.evaluation.results import RetrievalResults


def worked_example():
    """Query/gallery results written by hand.

    gallery labels (indices 0..6): 0 0 1 1 1 2 3
    query A, label 0, R=2: neighbours 2 0 3 1 5 -> labels 1 0 1 0 2 -> relevant 0 1 0 1 0
    query B, label 1, R=3: neighbours 2 3 0 5 4 -> labels 1 1 0 2 1 -> relevant 1 1 0 0 1
    query C, label 2, R=1: neighbours 6 5 0 1 2 -> labels 3 2 0 0 1 -> relevant 0 1 0 0 0
    query D, label 4, R=0: lone, left out of every metric
    """
    indices = torch.tensor([[2, 0, 3, 1, 5], [2, 3, 0, 5, 4], [6, 5, 0, 1, 2], [0, 1, 2, 3, 4]])
    return RetrievalResults(
        torch.zeros(4, 5), indices, torch.tensor([0, 1, 2, 4]), torch.tensor([0, 0, 1, 1, 1, 2, 3]), False
    )


def test_worked_example():
    res = worked_example()
    assert res.num_relevant.tolist() == [2, 3, 1, 0] and res.num_lone == 1
    # first relevant at rank 2 (A), 1 (B), 2 (C)
    assert recall_at_k(res, [1, 2, 5]) == pytest.approx({1: 1 / 3, 2: 1.0, 5: 1.0})
    # AP@R: A (1/2)·P(2) = (1/2)(1/2) = 1/4;  B (1/3)(P(1) + P(2)) = (1/3)(1 + 1) = 2/3;  C 0
    assert map_at_r(res) == pytest.approx((1 / 4 + 2 / 3 + 0) / 3)
    # relevant among the first R: A 1/2, B 2/3, C 0/1
    assert r_precision(res) == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)


def test_leave_one_out_worked_example():
    # 1-D points: item 2 (label 1) has the two label-0 items nearer than its own class; item 5 is lone
    x = torch.tensor([[0.0], [0.2], [0.5], [3.0], [3.1], [9.0]])
    res = retrieve(x, [0, 0, 1, 1, 1, 2], k=3)
    assert res.num_relevant.tolist() == [1, 1, 2, 2, 2, 0]
    assert res.indices[2].tolist() == [1, 0, 3]
    assert recall_at_k(res, [1, 2, 3]) == pytest.approx({1: 0.8, 2: 0.8, 3: 1.0})
    assert map_at_r(res) == pytest.approx(0.8)  # APs 1, 1, 0, 1, 1
    assert r_precision(res) == pytest.approx(0.8)


def reference_loop(res):
    """Per-query Python loops over the neighbour labels: the definitions, written plainly."""
    recalls, aps, rps = {k: [] for k in (1, 3, 5)}, [], []
    for q in range(res.num_queries):
        label = int(res.query_labels[q])
        relevant = int((res.gallery_labels == label).sum()) - int(res.query_is_gallery)
        if relevant == 0:
            continue
        rel = [int(res.gallery_labels[j]) == label for j in res.indices[q].tolist()]
        for k in recalls:
            recalls[k].append(float(any(rel[:k])))
        hits, ap = 0, 0.0
        for i in range(relevant):
            if rel[i]:
                hits += 1
                ap += hits / (i + 1)
        aps.append(ap / relevant)
        rps.append(sum(rel[:relevant]) / relevant)
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    return {k: mean(v) for k, v in recalls.items()}, mean(aps), mean(rps)


@pytest.mark.parametrize("query_gallery", [False, True])
def test_match_reference_loop(query_gallery):
    x, y = clustered(seed=5, noise=1.5)
    if query_gallery:
        res = retrieve(x[::2], y[::2], x[1::2], y[1::2], k=required_k([5], y[::2], y[1::2]))
    else:
        res = retrieve(x, y, k=required_k([5], y))
    recalls, ap, rp = reference_loop(res)
    assert recall_at_k(res, [1, 3, 5]) == pytest.approx(recalls, abs=1e-12)
    assert map_at_r(res) == pytest.approx(ap, abs=1e-12)
    assert r_precision(res) == pytest.approx(rp, abs=1e-12)


def test_all_lone_gives_nan():
    res = retrieve(torch.randn(4, 3), [0, 1, 2, 3], k=3)
    assert res.num_lone == 4
    assert all(v != v for v in (map_at_r(res), r_precision(res), recall_at_k(res, [1])[1]))


def test_too_few_neighbours_raise():
    x, y = torch.randn(8, 2), [0, 0, 0, 0, 1, 1, 1, 1]  # R = 3
    res = retrieve(x, y, k=2)
    with pytest.raises(ValueError, match=r"largest R = 3\) needs 3 neighbours per query but only 2"):
        map_at_r(res)
    with pytest.raises(ValueError, match="needs 3 neighbours"):
        r_precision(res)
    with pytest.raises(ValueError, match="Recall@4 needs 4 neighbours"):
        recall_at_k(res, [4])
    everything = retrieve(x, y, k=100)  # capped at the 7 candidates: any K is then exact
    assert everything.k == 7 and recall_at_k(everything, [50]) == {50: 1.0}


def test_required_k():
    y = [0, 0, 0, 1, 1]
    assert required_k([1, 2, 4, 8], y) == 4  # capped at 4 candidates
    assert required_k([1], y) == 2  # largest R
    assert required_k([1, 2], None) == 2
    assert required_k([], [0, 1], [0, 0, 0, 1]) == 3
    assert required_k([1], retrieve(torch.randn(5, 2), y, k=1)) == 2


def clustered(n_classes=40, dim=16, seed=0, noise=1.0):
    """Random class centres plus noise; class sizes 1-8, so some queries are lone."""
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(1, 9, (n_classes,), generator=g)
    labels = torch.repeat_interleave(torch.arange(n_classes), sizes)
    labels = labels[torch.randperm(len(labels), generator=g)]
    centres = torch.randn(n_classes, dim, generator=g)
    return centres[labels] + noise * torch.randn(len(labels), dim, generator=g), labels


PML_KEYS = {"precision_at_1": "recall@1", "mean_average_precision_at_r": "map@r", "r_precision": "r_precision"}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("query_gallery", [False, True])
def test_match_pml_accuracy_calculator(seed, query_gallery):
    """Lone queries are included: PML leaves them out of these three metrics, as dmlkit does."""
    x, y = clustered(seed=seed)
    calc = AccuracyCalculator(include=tuple(PML_KEYS), k="max_bin_count")
    if query_gallery:  # (PML's faiss search needs contiguous tensors)
        q, qy, g, gy = x[::2].contiguous(), y[::2].contiguous(), x[1::2].contiguous(), y[1::2].contiguous()
        pml = calc.get_accuracy(q, qy, g, gy, ref_includes_query=False)
    else:
        q, qy, g, gy = x, y, None, None
        pml = calc.get_accuracy(x, y)
    report = evaluate_embeddings(q, qy, g, gy, recall_at=(1,), metrics=("recall", "map@r", "r_precision"))
    assert report.counts["lone_queries"] > 0
    for theirs, ours in PML_KEYS.items():
        assert report.metrics[ours] == pytest.approx(pml[theirs], abs=1e-6)
