"""Retrieval and clustering evaluation: exact kNN, Recall@K, MAP@R, NMI, F1."""
