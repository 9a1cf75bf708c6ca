"""Retrieval and clustering evaluation: exact kNN, Recall@K, MAP@R, R-precision, NMI, F1."""

from dmlkit.evaluation.clustering import PairwiseScores, kmeans, nmi, pairwise_f1, pairwise_scores
from dmlkit.evaluation.evaluate import ALL_METRICS, EvaluationReport, evaluate_embeddings
from dmlkit.evaluation.knn import exact_knn
from dmlkit.evaluation.results import RetrievalResults, retrieve
from dmlkit.evaluation.retrieval_metrics import map_at_r, r_precision, recall_at_k, required_k

__all__ = [
    "ALL_METRICS",
    "EvaluationReport",
    "PairwiseScores",
    "RetrievalResults",
    "evaluate_embeddings",
    "exact_knn",
    "kmeans",
    "map_at_r",
    "nmi",
    "pairwise_f1",
    "pairwise_scores",
    "r_precision",
    "recall_at_k",
    "required_k",
    "retrieve",
]
