"""Quality of a batch similarity against class labels (slide 14; methods.md §3(h) "Similarity quality").

The only place of the PL-manifold method that reads labels: training is unsupervised. The same
:func:`similarity_quality` scores the PL model and the pseudo-label baselines of the slides (k-means and
hierarchical clustering, :func:`pseudo_label_similarity`).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.exceptions import ConvergenceWarning

from dmlkit.losses import validate

PSEUDO_LABEL_METHODS = ("kmeans", "hierarchical")


def similarity_quality(
    similarity: torch.Tensor, members: torch.Tensor, labels: torch.Tensor | np.ndarray
) -> dict[str, float]:
    """Label purity of the neighbourhoods and correlation of the similarity with the same-label indicator.

    Args:
        similarity: (n, n) similarity of the points.
        members: (n, n) bool; row i = the points of i's neighbourhood (submanifold or cluster).
        labels: (n,) class labels.

    Returns:
        ``label_purity``: mean over points i of the fraction of i's neighbourhood members other than i that
        share i's label (points whose neighbourhood holds only themselves are skipped; nan if all are);
        ``gt_correlation``: Pearson correlation of the off-diagonal similarities with the same-label
        indicator (nan when either is constant).
    """
    s = similarity.detach().double().cpu().numpy()
    m = members.detach().bool().cpu().numpy()
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    n = len(y)
    if s.shape != (n, n) or m.shape != (n, n):
        raise ValueError(f"similarity (n, n), members (n, n) and labels (n,) expected; got {s.shape}, {m.shape}, {n}")
    same = y[:, None] == y[None, :]
    others = m & ~np.eye(n, dtype=bool)
    count = others.sum(1)
    has = count > 0
    purity = float(((others & same).sum(1)[has] / count[has]).mean()) if has.any() else math.nan
    off = ~np.eye(n, dtype=bool)
    a, b = s[off], same[off].astype(np.float64)
    correlation = math.nan
    if a.size:
        a, b = a - a.mean(), b - b.mean()
        norm = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
        correlation = float((a * b).sum()) / norm if norm > 0 else math.nan
    return {"label_purity": purity, "gt_correlation": correlation}


def pseudo_label_similarity(
    x: torch.Tensor, n_clusters: int, method: str = "kmeans", seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same-cluster similarity of the points ``x`` (n, d): the slides' clustering baselines.

    ``kmeans``: scikit-learn k-means (k-means++, 10 initialisations, ``random_state=seed``);
    ``hierarchical``: agglomerative clustering with Ward linkage (deterministic). ``n_clusters`` is clamped to n.

    Returns:
        ``(similarity, members)``: (n, n) fp32 same-cluster indicator (diagonal 1) and the same (n, n) as a bool
        mask, on ``x``'s device.
    """
    validate.positive_int("diagnostics.n_clusters", n_clusters)
    validate.choice("diagnostics.method", method, PSEUDO_LABEL_METHODS)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"embeddings (n, d) with n >= 1 expected, got {tuple(x.shape)}")
    points = x.detach().double().cpu().numpy()
    k = min(n_clusters, len(points))
    if k == 1:
        assign = np.zeros(len(points), dtype=np.int64)
    elif method == "kmeans":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # duplicate points: fewer distinct clusters
            assign = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(points)
    else:
        assign = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(points)
    cluster = torch.as_tensor(assign, device=x.device)
    members = cluster[:, None] == cluster[None, :]
    return members.float(), members
