"""The similarity-quality diagnostics of the seed's table (slide 14), run on test neighbourhoods.

[decision] The slides do not say on which points the table is measured. We measure on the evaluated
(test) embeddings, where reading labels is legitimate: a seeded subset S of at most ``points`` test
images, ``batches`` neighbourhood batches drawn inside S exactly like the training batches
(``queries`` random queries and their ``neighbours − 1`` nearest, duplicates dropped), and per batch

* the PL model: label purity of every point's submanifold and the correlation of the PL similarity
  with the same-label indicator;
* the clustering baselines: k-means and Ward hierarchical clustering of all of S with k = the
  number of classes in S, similarity = same cluster, neighbourhood = the point's cluster mates in the
  batch.

Each figure is the mean over the batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dmlkit.evaluation.knn import exact_knn
from dmlkit.methods.pl_manifold.diagnostics import PSEUDO_LABEL_METHODS, pseudo_label_similarity, similarity_quality
from dmlkit.methods.pl_manifold.piecewise_linear import fit_pieces
from dmlkit.methods.pl_manifold.similarity import data_similarity

DIAGNOSTICS_WHEN = ("final", "every", "never")


def neighbourhood_batches(
    embeddings: torch.Tensor, batches: int, queries: int, neighbours: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """``batches`` index arrays: random queries (no query twice overall while possible) and their nearest."""
    n = len(embeddings)
    k = min(neighbours - 1, n - 1)
    knn = exact_knn(embeddings, None, k)[1].cpu().numpy() if k else np.zeros((n, 0), np.int64)
    wanted = batches * queries
    picks = rng.choice(n, wanted, replace=wanted > n)
    out = []
    for b in range(batches):
        q = picks[b * queries : (b + 1) * queries]
        rows = np.concatenate([q[:, None], knn[q]], axis=1).reshape(-1)
        _, first = np.unique(rows, return_index=True)
        out.append(rows[np.sort(first)])
    return out


def diagnostic_names() -> set[str]:
    """The keys :func:`run_diagnostics` returns."""
    return {f"diag_{m}_{q}" for m in ("pl", *PSEUDO_LABEL_METHODS) for q in ("purity", "correlation")}


def run_diagnostics(
    embeddings: torch.Tensor,
    labels: np.ndarray,
    batches: int = 20,
    queries: int = 24,
    neighbours: int = 5,
    piece_args: dict[str, Any] | None = None,
    similarity_args: dict[str, Any] | None = None,
    seed: int = 0,
    points: int = 4000,
) -> dict[str, float]:
    """``diag_{pl,kmeans,hierarchical}_{purity,correlation}`` averaged over test neighbourhood batches."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    subset = np.sort(rng.choice(len(labels), min(points, len(labels)), replace=False))
    x, y = embeddings[torch.as_tensor(subset)].float(), labels[subset]
    n_classes = len(np.unique(y))
    clusterings = {m: pseudo_label_similarity(x, n_classes, m, seed) for m in PSEUDO_LABEL_METHODS}
    sums: dict[str, list[float]] = {}

    def add(name: str, quality: dict[str, float]) -> None:
        sums.setdefault(f"diag_{name}_purity", []).append(quality["label_purity"])
        sums.setdefault(f"diag_{name}_correlation", []).append(quality["gt_correlation"])

    for rows in neighbourhood_batches(x, batches, queries, neighbours, rng):
        xb, yb, idx = x[torch.as_tensor(rows)], y[rows], torch.as_tensor(rows)
        pieces = fit_pieces(xb, **(piece_args or {}))
        add("pl", similarity_quality(data_similarity(xb, pieces, **(similarity_args or {})), pieces.members, yb))
        for name, (similarity, members) in clusterings.items():
            add(name, similarity_quality(similarity[idx][:, idx], members[idx][:, idx], yb))
    return {k: float(np.nanmean(v)) if not np.isnan(v).all() else float("nan") for k, v in sums.items()}
