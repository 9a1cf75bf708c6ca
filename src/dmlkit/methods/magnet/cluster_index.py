"""The magnet loss's cluster index: k-means run separately in every class of the training set.

Each class c of ``n_c`` examples gets ``min(K, n_c)`` clusters (scikit-learn k-means, k-means++
initialisation, one run). A cluster that ends up empty (possible when a class has duplicate
points) is re-seeded with the point farthest from its centroid in the largest cluster of that
class, so every stored cluster has members. Clusters are numbered class by class.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning


@dataclass
class ClusterIndex:
    """Centroids, their classes and every example's cluster.

    Attributes:
        centroids: (n_clusters, dim) float32 cluster means of the indexed embeddings.
        cluster_class: (n_clusters,) int64 class of each cluster.
        assignments: (n_examples,) int64 cluster of each training example.
    """

    centroids: np.ndarray
    cluster_class: np.ndarray
    assignments: np.ndarray

    @property
    def num_clusters(self) -> int:
        return len(self.centroids)

    def members(self) -> list[np.ndarray]:
        """Example indices of every cluster (ascending)."""
        order = np.argsort(self.assignments, kind="stable")
        bounds = np.searchsorted(self.assignments[order], np.arange(self.num_clusters + 1))
        return [order[bounds[c] : bounds[c + 1]] for c in range(self.num_clusters)]

    def nearest_impostors(self, cluster: int, count: int) -> np.ndarray:
        """The ``count`` clusters of other classes nearest to ``cluster``'s centroid, nearest first
        (ties to the lower cluster id); fewer when fewer exist."""
        d = ((self.centroids - self.centroids[cluster]) ** 2).sum(1)
        candidates = np.flatnonzero(self.cluster_class != self.cluster_class[cluster])
        order = np.lexsort((candidates, d[candidates]))
        return candidates[order[:count]]

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"centroids": self.centroids, "cluster_class": self.cluster_class, "assignments": self.assignments}

    @classmethod
    def from_state_dict(cls, state: dict[str, np.ndarray]) -> ClusterIndex:
        return cls(np.asarray(state["centroids"]), np.asarray(state["cluster_class"]), np.asarray(state["assignments"]))


def _reseed_empty(x: np.ndarray, assign: np.ndarray, k: int) -> np.ndarray:
    """Give every empty cluster of ``0..k-1`` one point: the farthest from its centroid in the largest cluster."""
    assign = assign.copy()
    for empty in range(k):
        if (assign == empty).any():
            continue
        largest = np.bincount(assign, minlength=k).argmax()
        members = np.flatnonzero(assign == largest)
        centre = x[members].mean(0)
        far = members[((x[members] - centre) ** 2).sum(1).argmax()]
        assign[far] = empty
    return assign


def build_cluster_index(
    embeddings: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, k: int, seed: int = 0, max_iter: int = 20
) -> ClusterIndex:
    """Per-class k-means with ``k`` clusters per class (fewer for classes with fewer examples).

    Args:
        embeddings: (n, dim) embeddings of the training set.
        labels: (n,) class labels.
        k: Clusters per class (K = 1: one cluster, the class mean).
        seed: Seed of the k-means initialisations (class c uses ``seed + c``).
        max_iter: Lloyd iterations per class (20, as in the reference TensorFlow code).
    """
    if k < 1:
        raise ValueError(f"k (clusters per class) must be >= 1, got {k}")
    x = np.ascontiguousarray(torch.as_tensor(embeddings).detach().float().cpu().numpy())
    y = np.asarray(torch.as_tensor(labels).cpu().numpy()).astype(np.int64)
    if x.ndim != 2 or y.shape != (len(x),):
        raise ValueError(f"embeddings (n, dim) and labels (n,) expected, got {x.shape} and {y.shape}")
    assignments = np.empty(len(x), dtype=np.int64)
    centroids, cluster_class = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        kc = min(k, len(idx))
        if kc == 1:
            local = np.zeros(len(idx), dtype=np.int64)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # duplicate points: handled below
                km = KMeans(n_clusters=kc, n_init=1, max_iter=max_iter, random_state=int(seed + c))
                local = _reseed_empty(x[idx], km.fit_predict(x[idx]).astype(np.int64), kc)
        offset = len(centroids)
        assignments[idx] = local + offset
        for j in range(kc):
            centroids.append(x[idx[local == j]].mean(0))
            cluster_class.append(c)
    return ClusterIndex(np.stack(centroids).astype(np.float32), np.asarray(cluster_class, dtype=np.int64), assignments)
