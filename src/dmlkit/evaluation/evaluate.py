"""Embeddings in, the zero-shot metrics out: Recall@K, NMI, F1, MAP@R, R-precision."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from dmlkit.evaluation.clustering import kmeans, nmi, pairwise_f1
from dmlkit.evaluation.knn import Backend, Metric
from dmlkit.evaluation.results import RetrievalResults, _labels, retrieve
from dmlkit.evaluation.retrieval_metrics import map_at_r, r_precision, recall_at_k, required_k

ALL_METRICS = ("recall", "nmi", "f1", "map@r", "r_precision")


@dataclass
class EvaluationReport:
    """Metrics (keys ``recall@K``, ``nmi``, ``f1``, ``map@r``, ``r_precision``), the retrieval
    results they came from, counts, and the seconds each part took."""

    metrics: dict[str, float]
    results: RetrievalResults | None
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def evaluate_embeddings(
    query_emb: torch.Tensor,
    query_labels: torch.Tensor | np.ndarray,
    gallery_emb: torch.Tensor | None = None,
    gallery_labels: torch.Tensor | np.ndarray | None = None,
    recall_at: Sequence[int] = (1, 2, 4, 8),
    metrics: Sequence[str] = ALL_METRICS,
    metric: Metric = "euclidean",
    seed: int = 0,
    backend: Backend = "auto",
    **knn_kwargs,
) -> EvaluationReport:
    """Evaluate embeddings as in the DML literature.

    Without a gallery, every query searches all other queries (CUB, Cars, SOP); with one,
    queries search the gallery (In-Shop). NMI and F1 cluster the evaluated set (query ∪
    gallery in query/gallery mode) with k-means, k = its number of classes.
    """
    unknown = set(metrics) - set(ALL_METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; valid: {', '.join(ALL_METRICS)}")
    out: dict[str, float] = {}
    timings: dict[str, float] = {}
    q_lab = _labels(query_labels)
    g_lab = q_lab if gallery_labels is None else _labels(gallery_labels)
    results = None
    if {"recall", "map@r", "r_precision"} & set(metrics):
        need_r = {"map@r", "r_precision"} & set(metrics)
        size = int(max(q_lab.max(), g_lab.max())) + 1
        relevant = torch.bincount(g_lab, minlength=size)[q_lab] - (1 if gallery_emb is None else 0)
        k = required_k(recall_at if "recall" in metrics else (1,), relevant if need_r else None)
        start = time.perf_counter()
        results = retrieve(
            query_emb,
            q_lab,
            gallery_emb,
            None if gallery_emb is None else g_lab,
            k=k,
            metric=metric,
            backend=backend,
            **knn_kwargs,
        )
        timings["knn"] = time.perf_counter() - start
        start = time.perf_counter()
        if "recall" in metrics:
            out.update({f"recall@{k}": v for k, v in recall_at_k(results, recall_at).items()})
        if "map@r" in metrics:
            out["map@r"] = map_at_r(results)
        if "r_precision" in metrics:
            out["r_precision"] = r_precision(results)
        timings["retrieval_metrics"] = time.perf_counter() - start
    if {"nmi", "f1"} & set(metrics):
        emb = query_emb if gallery_emb is None else torch.cat([query_emb, gallery_emb])
        labels = (q_lab if gallery_emb is None else torch.cat([q_lab, g_lab])).numpy()
        start = time.perf_counter()
        assign = kmeans(emb, len(np.unique(labels)), seed=seed)
        timings["kmeans"] = time.perf_counter() - start
        if "nmi" in metrics:
            out["nmi"] = nmi(labels, assign)
        if "f1" in metrics:
            out["f1"] = pairwise_f1(labels, assign)
    counts = {"queries": len(q_lab), "gallery": len(g_lab)}
    if results is not None:
        counts["lone_queries"] = int(results.lone.sum())
    return EvaluationReport(out, results, counts, timings)
