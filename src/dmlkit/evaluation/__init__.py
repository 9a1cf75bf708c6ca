"""Retrieval and clustering evaluation: exact kNN, Recall@K, MAP@R, R-precision, NMI, F1."""

from dmlkit.evaluation.evaluate import ALL_METRICS, EvaluationReport, evaluate_embeddings
from dmlkit.evaluation.knn import exact_knn
from dmlkit.evaluation.results import RetrievalResults, retrieve

__all__ = [
    "ALL_METRICS",
    "EvaluationReport",
    "RetrievalResults",
    "evaluate_embeddings",
    "exact_knn",
    "retrieve",
]
