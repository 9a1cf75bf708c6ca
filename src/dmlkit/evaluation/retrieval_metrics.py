"""Retrieval metrics from :class:`RetrievalResults`, vectorised over queries.

Queries with no relevant gallery item ("lone" queries) are left out of every metric,
as pytorch-metric-learning's AccuracyCalculator does.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from dmlkit.evaluation.results import RetrievalResults


def required_k(ks: Iterable[int], num_relevant: torch.Tensor | None = None) -> int:
    """Neighbours needed: the largest K of Recall@K, and the largest R for MAP@R / R-precision."""
    k = max(ks, default=1)
    if num_relevant is not None and len(num_relevant):
        k = max(k, int(num_relevant.max()))
    return k


def _valid(results: RetrievalResults) -> torch.Tensor:
    return ~results.lone


def recall_at_k(results: RetrievalResults, ks: Iterable[int]) -> dict[int, float]:
    """Fraction of queries with at least one same-class item among their first K neighbours.

    A K larger than the number of neighbours searched raises (it would be silently wrong).
    """
    valid = _valid(results)
    hits = results.matches[valid]
    out = {}
    for k in ks:
        if k > results.k and k <= len(results.gallery_labels) - int(results.query_is_gallery):
            raise ValueError(f"Recall@{k} needs {k} neighbours; only {results.k} were searched")
        out[k] = float(hits[:, :k].any(1).float().mean()) if len(hits) else float("nan")
    return out


def _first_r(results: RetrievalResults) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    valid = _valid(results)
    r = results.num_relevant[valid]
    if len(r) and int(r.max()) > results.k:
        raise ValueError(f"MAP@R / R-precision need {int(r.max())} neighbours; only {results.k} were searched")
    rel = results.matches[valid][:, : max(int(r.max()) if len(r) else 1, 1)].float()
    within = torch.arange(rel.shape[1])[None, :] < r[:, None]
    return rel * within, r.float(), within


def map_at_r(results: RetrievalResults) -> float:
    """MAP@R (Musgrave et al. 2020): mean over queries of ``1/R Σ_{i≤R} P(i)·rel(i)``."""
    rel, r, _ = _first_r(results)
    if not len(r):
        return float("nan")
    precision = rel.cumsum(1) / torch.arange(1, rel.shape[1] + 1)[None, :]
    return float(((precision * rel).sum(1) / r).mean())


def r_precision(results: RetrievalResults) -> float:
    """R-precision: fraction of relevant items among the first R neighbours."""
    rel, r, _ = _first_r(results)
    return float((rel.sum(1) / r).mean()) if len(r) else float("nan")
