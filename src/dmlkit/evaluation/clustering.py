"""Clustering quality: k-means on the embeddings, then NMI and pairwise F1 against the labels.

Protocol (``methods.md``): k-means with k = number of classes of the evaluated set (:func:`kmeans`:
greedy k-means++ seeding, Lloyd to convergence, the best of :data:`EVAL_RESTARTS` seedings by inertia), then
``NMI = 2·I(Ω;C) / (H(Ω) + H(C))`` and the F1 of pairwise precision and recall.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import numpy as np
import torch
from sklearn.metrics import normalized_mutual_info_score

KMeansBackend = Literal["auto", "faiss", "sklearn"]

#: Lloyd iterations at most (sklearn stops earlier once no assignment changes; faiss runs them all).
MAX_ITER = 300
#: Lloyd iterations of the faiss backend when ``niter`` is not given.
FAISS_NITER = 50
#: Restarts of the evaluation's k-means (:func:`dmlkit.evaluation.evaluate_embeddings`).
EVAL_RESTARTS = 3


def kmeans_plus_plus(x: np.ndarray | torch.Tensor, n_clusters: int, seed: int, block: int = 8192) -> np.ndarray:
    """Initial centres by greedy k-means++ (Arthur & Vassilvitskii 2007, with the 2 + ⌊ln k⌋ candidates per
    step of scikit-learn's ``kmeans_plusplus``): each centre is the best, by the potential it leaves, of
    candidates drawn with probability ∝ D², the squared distance to the nearest centre so far.

    In torch on the points' device, O(n·k·log k·dim) with small per-step overhead, so that the cost grows
    smoothly with the set (scikit-learn's own loop takes minutes at 24k points × 2k clusters) and runs on
    a GPU. Deterministic for a seed (the draws come from a CPU generator).
    """
    points = torch.as_tensor(x).float()
    n = len(points)
    trials = 2 + int(math.log(n_clusters))
    gen = torch.Generator().manual_seed(int(seed))
    sq_norms = points.pow(2).sum(1)

    def sq_dist(rows: torch.Tensor) -> torch.Tensor:  # (len(rows), n) squared distances to every point
        out = torch.empty(len(rows), n, dtype=points.dtype, device=points.device)
        for start in range(0, n, block):
            part = points[start : start + block]
            d = sq_norms[rows, None] + sq_norms[None, start : start + block] - 2 * points[rows] @ part.T
            out[:, start : start + block] = d.clamp_(min=0)
        return out

    chosen = torch.empty(n_clusters, dtype=torch.long)
    chosen[0] = int(torch.randint(n, (1,), generator=gen))
    closest = sq_dist(chosen[:1])[0].double()
    for c in range(1, n_clusters):
        cumulative = closest.cumsum(0)
        total = cumulative[-1]
        draws = torch.rand(trials, generator=gen, dtype=torch.float64).to(points.device) * total
        candidates = torch.searchsorted(cumulative, draws).clamp_(max=n - 1)
        if total <= 0:  # fewer distinct points than clusters: any remaining point
            candidates = torch.randint(n, (trials,), generator=gen).to(points.device)
        merged = torch.minimum(closest[None], sq_dist(candidates).double())
        best = int(merged.sum(1).argmin())
        chosen[c] = int(candidates[best])
        closest = merged[best]
    return np.ascontiguousarray(points[chosen.to(points.device)].cpu().numpy(), dtype=np.float32)


def _lloyd(x: np.ndarray, centres: np.ndarray, backend: str, niter: int | None) -> tuple[np.ndarray, float]:
    """Lloyd's iterations from ``centres``: the assignments and the inertia (sum of squared distances)."""
    if backend == "faiss":
        import faiss

        km = faiss.Kmeans(
            x.shape[1],
            len(centres),
            niter=niter or FAISS_NITER,
            verbose=False,
            max_points_per_centroid=-(-len(x) // len(centres)) + 1,  # no subsampling
            min_points_per_centroid=1,  # no warning for small clusters
        )
        km.train(x, init_centroids=centres)
        dist, assign = km.index.search(x, 1)
        return assign[:, 0].astype(np.int64), float(dist.sum())
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=len(centres), init=centres, n_init=1, max_iter=niter or MAX_ITER, tol=0.0)
    labels = km.fit_predict(x).astype(np.int64)
    return labels, float(km.inertia_)


def kmeans(
    embeddings: torch.Tensor | np.ndarray,
    n_clusters: int,
    seed: int = 0,
    backend: KMeansBackend = "auto",
    niter: int | None = None,
    restarts: int = 1,
) -> np.ndarray:
    """Cluster assignments (n,) int64 of k-means, seeded and deterministic.

    One algorithm at every size, so that NMI and F1 do not depend on the size of the set or on which
    library is installed: greedy k-means++ seeding (:func:`kmeans_plus_plus`, on the embeddings' device),
    then Lloyd's iterations until no
    assignment changes; ``restarts`` times with seeds ``seed, seed + 1, ...``, keeping the clustering
    of lowest inertia.

    Args:
        embeddings: (n, dim) points.
        n_clusters: k, 1 ≤ k ≤ n.
        seed: Seed of the first seeding.
        backend: Who runs Lloyd's iterations from those seeds: ``sklearn`` (to convergence, at most
            ``niter``, default :data:`MAX_ITER`) or ``faiss`` (exactly ``niter`` iterations, default
            :data:`FAISS_NITER`; the same clustering once Lloyd has converged within them, and faster for
            many clusters). ``auto`` (default) is ``sklearn``, always installed.
        niter: Iterations (see ``backend``).
        restarts: Seedings tried (at least 1).
    """
    x = np.ascontiguousarray(torch.as_tensor(embeddings).detach().float().cpu().numpy())
    if x.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (n, dim), got shape {x.shape}")
    if not 1 <= n_clusters <= len(x):
        raise ValueError(f"n_clusters={n_clusters} must be between 1 and the number of points ({len(x)})")
    if backend not in ("auto", "faiss", "sklearn"):
        raise ValueError(f"backend must be auto, faiss or sklearn, got {backend!r}")
    if restarts < 1:
        raise ValueError(f"restarts must be >= 1, got {restarts}")
    backend = "sklearn" if backend == "auto" else backend
    best: tuple[np.ndarray, float] | None = None
    points = torch.as_tensor(embeddings).detach().float()
    for attempt in range(restarts):
        found = _lloyd(x, kmeans_plus_plus(points, n_clusters, seed + attempt), backend, niter)
        if best is None or found[1] < best[1]:
            best = found
    return best[0]


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
