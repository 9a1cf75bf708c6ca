"""Retrieval metrics from :class:`RetrievalResults`, vectorised over queries (no per-query loops).

Decisions:

* **Lone queries** (no relevant gallery item, R = 0) are left out of Recall@K, MAP@R and
  R-precision alike; :attr:`RetrievalResults.num_lone` counts them and
  :func:`~dmlkit.evaluation.evaluate.evaluate_embeddings` reports the count. This is what
  pytorch-metric-learning's ``AccuracyCalculator`` does for ``precision_at_1`` (= Recall@1),
  ``mean_average_precision_at_r`` and ``r_precision`` (its "not lone query" mask), so the numbers
  agree. A metric of a set whose queries are all lone is ``nan``.
* **Never silently wrong.** Recall@K with K above the neighbours searched, or MAP@R /
  R-precision with some R above them, raise ``ValueError`` (unless every candidate was searched).
  :func:`required_k` gives the k to search.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from dmlkit.evaluation.results import LabelsLike, RetrievalResults, as_labels, relevant_counts


def required_k(
    ks: Iterable[int],
    labels: RetrievalResults | LabelsLike | None = None,
    gallery_labels: LabelsLike | None = None,
) -> int:
    """Neighbours to search: ``max(max(ks), largest R)``, capped at the number of candidates.

    Args:
        ks: The Ks of Recall@K (empty when only MAP@R / R-precision are wanted).
        labels: Query labels (or a :class:`RetrievalResults`) to include the largest R, needed by
            MAP@R and R-precision; ``None`` for Recall@K alone.
        gallery_labels: Gallery labels; ``None`` (default) when the queries are the gallery.

    Example:
        >>> required_k([1, 2, 4, 8], [0, 0, 0, 1, 1])  # largest R is 2, largest K is 8, 4 candidates
        4
        >>> required_k([1], [0, 0, 0, 1, 1])
        2
    """
    k = max(ks, default=1)
    if labels is None:
        return max(k, 1)
    if isinstance(labels, RetrievalResults):
        r, n_candidates = labels.num_relevant, labels.num_candidates
    else:
        q = as_labels(labels, "query_labels")
        r = relevant_counts(q, gallery_labels)
        n_candidates = len(q) - 1 if gallery_labels is None else len(as_labels(gallery_labels))
    if len(r):
        k = max(k, int(r.max()))
    return max(1, min(k, n_candidates))


def _check_k(results: RetrievalResults, needed: int, what: str) -> None:
    if needed > results.k and results.k < results.num_candidates:
        raise ValueError(
            f"{what} needs {needed} neighbours per query but only {results.k} were searched; "
            "search with k=required_k(...)"
        )


def recall_at_k(results: RetrievalResults, ks: Iterable[int]) -> dict[int, float]:
    """Recall@K: fraction of (non-lone) queries with at least one same-class item among the first K.

    Example:
        >>> res = RetrievalResults(torch.zeros(2, 3), torch.tensor([[2, 0, 1], [0, 1, 2]]),
        ...                        torch.tensor([0, 1]), torch.tensor([0, 1, 1]), False)
        >>> recall_at_k(res, [1, 2])  # query 0 hits at rank 2, query 1 at rank 2
        {1: 0.0, 2: 1.0}
    """
    ks = [int(k) for k in ks]
    if any(k < 1 for k in ks):
        raise ValueError(f"Recall@K needs K >= 1, got {ks}")
    for k in ks:
        _check_k(results, k, f"Recall@{k}")
    matches = results.matches[~results.lone]
    if not len(matches):
        return {k: float("nan") for k in ks}
    # rank (0-based) of the first match; "never" when there is none among the neighbours searched
    never = torch.iinfo(torch.int64).max
    first = torch.where(matches.any(1), matches.to(torch.int8).argmax(1), never)
    return {k: float((first < k).double().mean()) for k in ks}


def _relevance_within_r(results: RetrievalResults) -> tuple[torch.Tensor, torch.Tensor]:
    """(relevance of the first R neighbours, R) of the non-lone queries; padded with False to max R."""
    keep = ~results.lone
    r = results.num_relevant[keep]
    if not len(r):
        return torch.zeros(0, 0, dtype=torch.bool), r
    r_max = int(r.max())
    _check_k(results, r_max, f"MAP@R / R-precision (largest R = {r_max})")
    rel = results.matches[keep][:, :r_max]
    return rel & (torch.arange(r_max)[None, :] < r[:, None]), r


def map_at_r(results: RetrievalResults) -> float:
    """MAP@R (Musgrave et al. 2020): mean over non-lone queries of ``(1/R) Σ_{i≤R} P(i)·rel(i)``,
    with R the query's number of relevant gallery items and P(i) the precision of the first i."""
    rel, r = _relevance_within_r(results)
    if not len(r):
        return float("nan")
    rel = rel.double()
    precision = rel.cumsum(1) / torch.arange(1, rel.shape[1] + 1, dtype=torch.float64)
    return float(((precision * rel).sum(1) / r).mean())


def r_precision(results: RetrievalResults) -> float:
    """R-precision: mean over non-lone queries of the fraction of relevant items among the first R."""
    rel, r = _relevance_within_r(results)
    if not len(r):
        return float("nan")
    return float((rel.sum(1).double() / r).mean())
