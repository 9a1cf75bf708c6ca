"""Clustering quality: k-means on the embeddings, then NMI and pairwise F1 against the labels.

Protocol (``methods.md``): k-means with k = number of classes of the evaluated set, then
``NMI = 2·I(Ω;C) / (H(Ω) + H(C))`` and the F1 of pairwise precision and recall.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import torch
from sklearn.metrics import normalized_mutual_info_score

from dmlkit.evaluation.knn import faiss_available

KMeansBackend = Literal["auto", "faiss", "sklearn"]

#: ``kmeans(backend="auto")`` uses faiss above this many points × clusters (SOP, In-Shop), sklearn below
#: (CUB, Cars), where k-means++ costs little.
SKLEARN_MAX_WORK = 5e7
#: Iterations of faiss k-means when ``niter`` is not given.
FAISS_NITER = 20


def kmeans(
    embeddings: torch.Tensor | np.ndarray,
    n_clusters: int,
    seed: int = 0,
    backend: KMeansBackend = "auto",
    niter: int | None = None,
) -> np.ndarray:
    """Cluster assignments (n,) int64 of k-means, seeded and deterministic.

    Args:
        embeddings: (n, dim) points.
        n_clusters: k, 1 ≤ k ≤ n.
        seed: Random seed of the initialisation (default 0).
        backend: ``sklearn``: k-means++ initialisation, one run of Lloyd iterations to convergence
            (at most ``niter``, default 300). ``faiss``: random initialisation, ``niter`` iterations
            (default 20) over every point (no subsampling); much faster for many clusters.
            ``auto`` (default): sklearn up to :data:`SKLEARN_MAX_WORK` points × clusters, faiss
            beyond when it is installed.
        niter: Iterations (see ``backend``).
    """
    x = np.ascontiguousarray(torch.as_tensor(embeddings).detach().float().cpu().numpy())
    if x.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (n, dim), got shape {x.shape}")
    if not 1 <= n_clusters <= len(x):
        raise ValueError(f"n_clusters={n_clusters} must be between 1 and the number of points ({len(x)})")
    if backend not in ("auto", "faiss", "sklearn"):
        raise ValueError(f"backend must be auto, faiss or sklearn, got {backend!r}")
    if backend == "auto":
        backend = "faiss" if faiss_available() and len(x) * n_clusters > SKLEARN_MAX_WORK else "sklearn"
    if backend == "faiss":
        import faiss

        km = faiss.Kmeans(
            x.shape[1],
            n_clusters,
            niter=niter or FAISS_NITER,
            seed=seed,
            verbose=False,
            max_points_per_centroid=-(-len(x) // n_clusters) + 1,  # no subsampling
            min_points_per_centroid=1,  # no warning for small clusters
        )
        km.train(x)
        _, assign = km.index.search(x, 1)
        return assign[:, 0].astype(np.int64)
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=n_clusters, n_init=1, random_state=seed, max_iter=niter or 300)
    return km.fit_predict(x).astype(np.int64)


def nmi(labels: np.ndarray | torch.Tensor, assignments: np.ndarray | torch.Tensor) -> float:
    """Normalised mutual information ``2·I(Ω;C) / (H(Ω) + H(C))`` (arithmetic normalisation)."""
    return float(normalized_mutual_info_score(_np(labels), _np(assignments), average_method="arithmetic"))


class PairwiseScores(NamedTuple):
    """Pairwise precision, recall and F1 of a clustering."""

    precision: float
    recall: float
    f1: float


def _np(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _pairs(counts: np.ndarray) -> float:
    counts = counts.astype(np.float64)
    return float((counts * (counts - 1) / 2).sum())


def pairwise_scores(labels: np.ndarray | torch.Tensor, assignments: np.ndarray | torch.Tensor) -> PairwiseScores:
    """Pairwise precision/recall/F1: a pair of items is predicted positive when it shares a cluster
    and is truly positive when it shares a class.

    Closed form from the contingency table ``n_ij`` (class i, cluster j): TP = Σ C(n_ij, 2),
    predicted = Σ_j C(n_·j, 2), actual = Σ_i C(n_i·, 2); never O(n²) pairs. An undefined precision or
    recall (no predicted or no actual pairs) counts as 0.

    Example:
        >>> pairwise_scores([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 1, 1])  # TP 2, predicted 7, actual 4
        PairwiseScores(precision=0.2857142857142857, recall=0.5, f1=0.36363636363636365)
    """
    labels, assignments = _np(labels), _np(assignments)
    if labels.shape != assignments.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and assignments {assignments.shape} must be 1-D of one length")
    _, lab = np.unique(labels, return_inverse=True)
    _, cl = np.unique(assignments, return_inverse=True)
    lab, cl = lab.reshape(-1).astype(np.int64), cl.reshape(-1).astype(np.int64)
    joint = np.unique(lab * (int(cl.max(initial=0)) + 1) + cl, return_counts=True)[1]
    tp, predicted, actual = _pairs(joint), _pairs(np.bincount(cl)), _pairs(np.bincount(lab))
    precision = tp / predicted if predicted else 0.0
    recall = tp / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PairwiseScores(precision, recall, f1)


def pairwise_f1(labels: np.ndarray | torch.Tensor, assignments: np.ndarray | torch.Tensor) -> float:
    """F1 of pairwise precision and recall (see :func:`pairwise_scores`)."""
    return pairwise_scores(labels, assignments).f1
