"""The retrieval results object: what search produced, consumed by metrics, plots and reports."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from dmlkit.evaluation.knn import Backend, Metric, exact_knn


@dataclass(frozen=True)
class RetrievalResults:
    """Neighbours of every query, ordered by (distance, gallery index).

    Attributes:
        distances: (n_q, k) squared L2 distances or negated similarities (smaller is nearer).
        indices: (n_q, k) gallery indices.
        query_labels: (n_q,) labels.
        gallery_labels: (n_g,) labels (the query labels when ``query_is_gallery``).
        query_is_gallery: Whether queries searched their own set, leaving themselves out.
    """

    distances: torch.Tensor
    indices: torch.Tensor
    query_labels: torch.Tensor
    gallery_labels: torch.Tensor
    query_is_gallery: bool

    @property
    def k(self) -> int:
        return self.indices.shape[1]

    @cached_property
    def retrieved_labels(self) -> torch.Tensor:
        return self.gallery_labels[self.indices]

    @cached_property
    def matches(self) -> torch.Tensor:
        """(n_q, k) bool: retrieved item has the query's label."""
        return self.retrieved_labels == self.query_labels[:, None]

    @cached_property
    def num_relevant(self) -> torch.Tensor:
        """(n_q,) gallery items sharing the query's label (the query itself excluded)."""
        size = int(max(self.gallery_labels.max(), self.query_labels.max())) + 1
        counts = torch.bincount(self.gallery_labels, minlength=size)
        return counts[self.query_labels] - (1 if self.query_is_gallery else 0)

    @property
    def lone(self) -> torch.Tensor:
        """(n_q,) bool: queries without any relevant gallery item; metrics leave them out."""
        return self.num_relevant == 0


def _labels(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.long)


def retrieve(
    query_emb: torch.Tensor,
    query_labels: torch.Tensor | np.ndarray,
    gallery_emb: torch.Tensor | None = None,
    gallery_labels: torch.Tensor | np.ndarray | None = None,
    k: int = 1,
    metric: Metric = "euclidean",
    backend: Backend = "auto",
    **knn_kwargs,
) -> RetrievalResults:
    """Search and wrap the neighbours in :class:`RetrievalResults` (results on the CPU)."""
    if (gallery_emb is None) != (gallery_labels is None):
        raise ValueError("pass both gallery_emb and gallery_labels, or neither")
    q_lab = _labels(query_labels)
    g_lab = q_lab if gallery_labels is None else _labels(gallery_labels)
    n_candidates = len(g_lab) - (1 if gallery_emb is None else 0)
    d, i = exact_knn(query_emb, gallery_emb, min(k, n_candidates), metric, backend=backend, **knn_kwargs)
    return RetrievalResults(d.cpu(), i.cpu(), q_lab, g_lab, gallery_emb is None)
