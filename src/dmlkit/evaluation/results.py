"""The retrieval results object: what the search found, consumed by metrics, plots and reports.

One immutable :class:`RetrievalResults` holds the neighbours of every query and the labels needed
to judge them; :func:`retrieve` builds it from embeddings. Metrics never search again.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch

from dmlkit.evaluation.knn import Metric, exact_knn

LabelsLike = torch.Tensor | np.ndarray | list[int]


def as_labels(labels: LabelsLike, name: str = "labels") -> torch.Tensor:
    """Labels as a 1-D int64 CPU tensor; raises ``ValueError`` for labels that are not integers."""
    arr = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind == "f" and np.array_equal(arr, np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers, got dtype {arr.dtype}")
    return torch.from_numpy(arr.astype(np.int64, copy=False))


@dataclass(frozen=True)
class RetrievalResults:
    """Neighbours of every query, ordered by (distance, gallery index) — see :mod:`dmlkit.evaluation.knn`.

    Attributes:
        distances: (n_q, k) float32 ranking distances: squared Euclidean, or negated similarities for
            ``cosine``/``dot``; smaller is nearer.
        indices: (n_q, k) int64 gallery indices.
        query_labels: (n_q,) int64 labels.
        gallery_labels: (n_g,) int64 labels (the query labels when ``query_is_gallery``).
        query_is_gallery: Whether the queries searched their own set, each leaving itself out.
        metric: The distance used (``euclidean``, ``cosine`` or ``dot``).
    """

    distances: torch.Tensor
    indices: torch.Tensor
    query_labels: torch.Tensor
    gallery_labels: torch.Tensor
    query_is_gallery: bool
    metric: Metric = "euclidean"

    def __post_init__(self) -> None:
        n_q, k = self.indices.shape
        if self.distances.shape != (n_q, k) or self.query_labels.shape != (n_q,):
            raise ValueError(
                f"distances {tuple(self.distances.shape)}, indices {tuple(self.indices.shape)} and "
                f"query_labels {tuple(self.query_labels.shape)} do not describe the same queries"
            )
        if self.query_is_gallery and len(self.gallery_labels) != n_q:
            raise ValueError("query_is_gallery needs gallery_labels to be the query labels")

    @property
    def num_queries(self) -> int:
        return self.indices.shape[0]

    @property
    def k(self) -> int:
        """Neighbours kept per query."""
        return self.indices.shape[1]

    @property
    def num_candidates(self) -> int:
        """Gallery items each query could retrieve (the gallery size, less one when leaving one out)."""
        return len(self.gallery_labels) - int(self.query_is_gallery)

    @cached_property
    def retrieved_labels(self) -> torch.Tensor:
        """(n_q, k) labels of the neighbours."""
        return self.gallery_labels[self.indices]

    @cached_property
    def matches(self) -> torch.Tensor:
        """(n_q, k) bool: the neighbour has the query's label."""
        return self.retrieved_labels == self.query_labels[:, None]

    @cached_property
    def num_relevant(self) -> torch.Tensor:
        """(n_q,) int64 R: gallery items with the query's label, the query itself excluded when
        ``query_is_gallery``."""
        return relevant_counts(self.query_labels, None if self.query_is_gallery else self.gallery_labels)

    @cached_property
    def lone(self) -> torch.Tensor:
        """(n_q,) bool: queries without any relevant gallery item (R = 0); metrics leave them out."""
        return self.num_relevant == 0

    @property
    def num_lone(self) -> int:
        return int(self.lone.sum())


def relevant_counts(query_labels: LabelsLike, gallery_labels: LabelsLike | None = None) -> torch.Tensor:
    """R per query: gallery items sharing its label (without a gallery: other queries sharing it)."""
    q = as_labels(query_labels, "query_labels")
    g = q if gallery_labels is None else as_labels(gallery_labels, "gallery_labels")
    values, codes = torch.unique(torch.cat([q, g]), return_inverse=True)
    counts = torch.bincount(codes[len(q) :], minlength=len(values))
    return counts[codes[: len(q)]] - int(gallery_labels is None)


def retrieve(
    query_emb: torch.Tensor,
    query_labels: LabelsLike,
    gallery_emb: torch.Tensor | None = None,
    gallery_labels: LabelsLike | None = None,
    k: int = 1,
    metric: Metric = "euclidean",
    **knn_kwargs: Any,
) -> RetrievalResults:
    """Search the ``k`` nearest neighbours and wrap them with the labels (results on the CPU).

    Args:
        query_emb: (n_q, dim) query embeddings (any device; the search runs there).
        query_labels: (n_q,) integer labels.
        gallery_emb: (n_g, dim) gallery embeddings, or ``None`` (default) to search the queries
            themselves, leaving each query out.
        gallery_labels: (n_g,) integer labels; given exactly when ``gallery_emb`` is.
        k: Neighbours per query (default 1), capped at the number of candidates.
        metric: ``euclidean`` (default), ``cosine`` or ``dot``.
        **knn_kwargs: Passed to :func:`~dmlkit.evaluation.knn.exact_knn` (``backend``, chunk sizes, ...).

    Example:
        >>> x = torch.tensor([[0.0], [0.1], [5.0], [5.2]])
        >>> res = retrieve(x, [0, 0, 1, 1], k=2)
        >>> res.indices.tolist(), res.matches[:, 0].tolist(), res.num_relevant.tolist()
        ([[1, 2], [0, 2], [3, 1], [2, 1]], [True, True, True, True], [1, 1, 1, 1])
    """
    if (gallery_emb is None) != (gallery_labels is None):
        raise ValueError("pass both gallery_emb and gallery_labels, or neither")
    q_lab = as_labels(query_labels, "query_labels")
    g_lab = q_lab if gallery_labels is None else as_labels(gallery_labels, "gallery_labels")
    if len(q_lab) != len(query_emb):
        raise ValueError(f"{len(query_emb)} query embeddings but {len(q_lab)} query labels")
    if gallery_emb is not None and len(g_lab) != len(gallery_emb):
        raise ValueError(f"{len(gallery_emb)} gallery embeddings but {len(g_lab)} gallery labels")
    n_candidates = len(g_lab) - int(gallery_emb is None)
    d, i = exact_knn(query_emb, gallery_emb, min(k, n_candidates), metric, **knn_kwargs)
    return RetrievalResults(d.cpu(), i.cpu(), q_lab, g_lab, gallery_emb is None, metric)
