"""Embeddings in, the zero-shot metrics out: Recall@K, NMI, F1, MAP@R and R-precision."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from dmlkit.evaluation.clustering import EVAL_RESTARTS, KMeansBackend, kmeans, nmi, pairwise_f1
from dmlkit.evaluation.knn import Metric
from dmlkit.evaluation.results import LabelsLike, RetrievalResults, as_labels, retrieve
from dmlkit.evaluation.retrieval_metrics import map_at_r, r_precision, recall_at_k, required_k

#: Metric families, in the order their keys appear in :attr:`EvaluationReport.metrics`.
ALL_METRICS = ("recall", "nmi", "f1", "map@r", "r_precision")
_RETRIEVAL = {"recall", "map@r", "r_precision"}


@dataclass(frozen=True)
class EvaluationReport:
    """What :func:`evaluate_embeddings` measured.

    Attributes:
        metrics: Metric values under exactly the keys ``recall@K`` (one per K), ``nmi``, ``f1``,
            ``map@r``, ``r_precision`` (those requested, in this order).
        results: The retrieval results the retrieval metrics came from (``None`` when only
            clustering metrics were requested).
        counts: ``num_queries``, ``num_gallery``, ``k`` (neighbours searched), ``lone_queries``
            (queries left out of the retrieval metrics, R = 0) and ``num_clusters``, where they apply.
        timings: Seconds per part: ``knn``, ``retrieval_metrics``, ``kmeans`` (every restart),
            ``clustering_metrics``, ``total``.
    """

    metrics: dict[str, float]
    results: RetrievalResults | None
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def evaluate_embeddings(
    query_emb: torch.Tensor,
    query_labels: LabelsLike,
    gallery_emb: torch.Tensor | None = None,
    gallery_labels: LabelsLike | None = None,
    recall_at: Sequence[int] = (1, 2, 4, 8),
    metrics: Sequence[str] = ALL_METRICS,
    metric: Metric = "euclidean",
    seed: int = 0,
    kmeans_backend: KMeansBackend = "auto",
    kmeans_restarts: int = EVAL_RESTARTS,
    **knn_kwargs: Any,
) -> EvaluationReport:
    """Evaluate embeddings with the zero-shot protocol of the DML literature.

    Without a gallery (CUB, Cars, SOP) every query searches all other queries (leave-one-out);
    with one (In-Shop) the queries search the gallery. The search keeps only the neighbours the
    metrics need (:func:`required_k`). NMI and F1 cluster the evaluated set with k-means, k = its
    number of distinct classes; in query/gallery mode that set is query ∪ gallery [decision: the
    papers do not say; this scores every test image once].

    Args:
        query_emb: (n_q, dim) embeddings (any device; the search runs there).
        query_labels: (n_q,) integer labels.
        gallery_emb: (n_g, dim) gallery embeddings, or ``None`` (default).
        gallery_labels: (n_g,) gallery labels, given exactly when ``gallery_emb`` is.
        recall_at: Ks of Recall@K (default 1, 2, 4, 8).
        metrics: Families to compute, from :data:`ALL_METRICS` (default all).
        metric: ``euclidean`` (default), ``cosine`` or ``dot``.
        seed: Seed of k-means (default 0).
        kmeans_backend: ``auto`` (default), ``faiss`` or ``sklearn`` (see :func:`kmeans`).
        kmeans_restarts: k-means++ seedings tried, the lowest inertia kept (default 3).
        **knn_kwargs: Passed to :func:`~dmlkit.evaluation.knn.exact_knn` (``backend``, chunk sizes,
            ``memory_budget_mb``).

    Example:
        >>> x = torch.tensor([[0.0, 0.0], [0.0, 0.1], [5.0, 5.0], [5.0, 5.1], [0.0, 0.2]])
        >>> report = evaluate_embeddings(x, [0, 0, 1, 1, 0], recall_at=(1, 2))
        >>> report.metrics
        {'recall@1': 1.0, 'recall@2': 1.0, 'nmi': 1.0, 'f1': 1.0, 'map@r': 1.0, 'r_precision': 1.0}
    """
    wanted = list(dict.fromkeys(metrics))
    unknown = [m for m in wanted if m not in ALL_METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; valid: {', '.join(ALL_METRICS)}")
    if (gallery_emb is None) != (gallery_labels is None):
        raise ValueError("pass both gallery_emb and gallery_labels, or neither")
    recall_at = list(dict.fromkeys(int(k) for k in recall_at)) if "recall" in wanted else []
    q_lab = as_labels(query_labels, "query_labels")
    g_lab = None if gallery_labels is None else as_labels(gallery_labels, "gallery_labels")
    start_all = time.perf_counter()
    values: dict[str, float] = {}
    timings: dict[str, float] = {}
    counts = {"num_queries": len(q_lab), "num_gallery": len(q_lab if g_lab is None else g_lab)}

    results = None
    if _RETRIEVAL & set(wanted):
        need_r = bool({"map@r", "r_precision"} & set(wanted))
        k = required_k(recall_at, q_lab if need_r else None, g_lab)
        start = time.perf_counter()
        results = retrieve(query_emb, q_lab, gallery_emb, g_lab, k=k, metric=metric, **knn_kwargs)
        timings["knn"] = time.perf_counter() - start
        start = time.perf_counter()
        if "recall" in wanted:
            values.update({f"recall@{k}": v for k, v in recall_at_k(results, recall_at).items()})
        if "map@r" in wanted:
            values["map@r"] = map_at_r(results)
        if "r_precision" in wanted:
            values["r_precision"] = r_precision(results)
        timings["retrieval_metrics"] = time.perf_counter() - start
        counts.update(k=results.k, lone_queries=results.num_lone)

    if {"nmi", "f1"} & set(wanted):
        emb = query_emb if gallery_emb is None else torch.cat([query_emb, gallery_emb.to(query_emb.device)])
        labels = (q_lab if g_lab is None else torch.cat([q_lab, g_lab])).numpy()
        n_clusters = len(set(labels.tolist()))
        start = time.perf_counter()
        assignments = kmeans(emb, n_clusters, seed=seed, backend=kmeans_backend, restarts=kmeans_restarts)
        timings["kmeans"] = time.perf_counter() - start
        start = time.perf_counter()
        if "nmi" in wanted:
            values["nmi"] = nmi(labels, assignments)
        if "f1" in wanted:
            values["f1"] = pairwise_f1(labels, assignments)
        timings["clustering_metrics"] = time.perf_counter() - start
        counts["num_clusters"] = n_clusters

    order = [f"recall@{k}" for k in recall_at] + [m for m in ALL_METRICS if m != "recall"]
    timings["total"] = time.perf_counter() - start_all
    return EvaluationReport({key: values[key] for key in order if key in values}, results, counts, timings)
