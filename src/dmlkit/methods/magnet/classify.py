"""The magnet loss's classifier (Rippel et al. 2016, §3.3): a softmax over the L nearest cluster means.

For a test representation r with its L nearest centroids μ_1..μ_L (over all classes),

    p(c | r) ∝ Σ_{l: class(μ_l) = c} exp(−‖r − μ_l‖² / (2σ²)),

and the prediction is argmax_c (ties to the lower class id). σ² is the variance estimated during
training (the running average of the batch σ̂²).
"""

from __future__ import annotations

import numpy as np
import torch


def cluster_class_scores(
    embeddings: torch.Tensor,
    centroids: torch.Tensor | np.ndarray,
    cluster_class: torch.Tensor | np.ndarray,
    variance: float,
    neighbours: int = 128,
    num_classes: int | None = None,
    chunk: int = 4096,
) -> torch.Tensor:
    """(n, num_classes) class probabilities p(c | r) from the ``neighbours`` nearest centroids.

    Computed in float64 on the embeddings' device, ``chunk`` rows at a time.
    """
    if variance <= 0:
        raise ValueError(f"variance must be positive, got {variance}")
    device = embeddings.device
    mu = torch.as_tensor(centroids, dtype=torch.float64, device=device)
    cls = torch.as_tensor(cluster_class, dtype=torch.int64, device=device)
    n_classes = int(cls.max()) + 1 if num_classes is None else num_classes
    take = min(neighbours, len(mu))
    out = torch.empty(len(embeddings), n_classes, dtype=torch.float64, device=device)
    for s in range(0, len(embeddings), chunk):
        x = embeddings[s : s + chunk].to(torch.float64)
        sq = torch.cdist(x, mu).pow(2)
        near_sq, near = torch.topk(sq, take, dim=1, largest=False)
        weights = torch.softmax(-near_sq / (2 * variance), dim=1)
        scores = torch.zeros(len(x), n_classes, dtype=torch.float64, device=device)
        out[s : s + chunk] = scores.scatter_add_(1, cls[near], weights)
    return out


def cluster_classify(
    embeddings: torch.Tensor,
    centroids: torch.Tensor | np.ndarray,
    cluster_class: torch.Tensor | np.ndarray,
    variance: float,
    neighbours: int = 128,
) -> torch.Tensor:
    """(n,) predicted class of each embedding (see :func:`cluster_class_scores`).

    Example:
        >>> centroids = [[0.0, 0.0], [1.0, 0.0], [10.0, 0.0]]
        >>> cluster_classify(torch.tensor([[0.4, 0.0], [9.0, 0.0]]), centroids, [0, 1, 1], 1.0).tolist()
        [0, 1]
    """
    return cluster_class_scores(embeddings, centroids, cluster_class, variance, neighbours).argmax(1)
