"""Clustering quality: k-means on the embeddings, then NMI and pairwise F1 against the labels."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from sklearn.metrics import normalized_mutual_info_score

from dmlkit.evaluation.knn import faiss_available

#: Above this many points × clusters, ``kmeans(backend="auto")`` uses faiss.
SKLEARN_MAX_WORK = 5e7


def kmeans(
    embeddings: torch.Tensor | np.ndarray,
    n_clusters: int,
    seed: int = 0,
    backend: Literal["auto", "faiss", "sklearn"] = "auto",
    niter: int = 20,
) -> np.ndarray:
    """Cluster assignments of k-means, seeded.

    ``sklearn``: k-means++ initialisation, one run to convergence (as the papers' code does).
    ``faiss``: random initialisation, ``niter`` iterations over every point; much faster for
    many clusters but may merge clusters k-means++ would separate. ``auto`` takes sklearn up
    to :data:`SKLEARN_MAX_WORK` points × clusters (CUB, Cars, In-Shop) and faiss beyond (SOP).
    """
    x = np.ascontiguousarray(torch.as_tensor(embeddings).detach().float().cpu().numpy())
    n_clusters = min(n_clusters, len(x))
    if backend == "auto":
        backend = "faiss" if faiss_available() and len(x) * n_clusters > SKLEARN_MAX_WORK else "sklearn"
    if backend == "faiss":
        import faiss

        km = faiss.Kmeans(
            x.shape[1],
            n_clusters,
            niter=niter,
            seed=seed,
            verbose=False,
            max_points_per_centroid=max(len(x), 256),
            min_points_per_centroid=1,
        )
        km.train(x)
        _, assign = km.index.search(x, 1)
        return assign[:, 0].astype(np.int64)
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=n_clusters, n_init=1, random_state=seed).fit_predict(x).astype(np.int64)


def nmi(labels: np.ndarray, assignments: np.ndarray) -> float:
    """Normalised mutual information ``2·I(Ω;C) / (H(Ω) + H(C))``."""
    return float(normalized_mutual_info_score(labels, assignments, average_method="arithmetic"))


def _pairs(counts: np.ndarray) -> float:
    counts = counts.astype(np.float64)
    return float((counts * (counts - 1) / 2).sum())


def pairwise_f1(labels: np.ndarray, assignments: np.ndarray) -> float:
    """F1 of pairwise precision and recall: pairs in one cluster vs pairs of one class.

    Computed in closed form from the contingency table (no O(n²) pair enumeration).
    """
    labels, assignments = np.asarray(labels), np.asarray(assignments)
    _, lab = np.unique(labels, return_inverse=True)
    _, cl = np.unique(assignments, return_inverse=True)
    joint = np.unique(lab.astype(np.int64) * (cl.max() + 1) + cl, return_counts=True)[1]
    tp = _pairs(joint)
    predicted = _pairs(np.bincount(cl))
    actual = _pairs(np.bincount(lab))
    if tp == 0:
        return 0.0
    precision, recall = tp / predicted, tp / actual
    return 2 * precision * recall / (precision + recall)
