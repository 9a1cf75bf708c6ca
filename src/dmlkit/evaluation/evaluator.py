"""One evaluator for the trainer, ``dmlkit eval`` and the Python API: retrieval and clustering
metrics of the test side, plus the method's own metrics (Magnet's classifier accuracy, ...)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dmlkit.config.schema import EvalConfig
from dmlkit.data.base import DMLDataset, EvalSplit
from dmlkit.evaluation.evaluate import evaluate_embeddings

#: ``embed(dataset) -> (embeddings, labels)``: the whole dataset embedded by the model under test.
DatasetEmbedder = Callable[[DMLDataset], tuple[torch.Tensor, Any]]
#: ``method_metrics(embeddings, labels, dataset, final) -> {name: value}`` (:meth:`Method.eval_metrics`).
MethodMetrics = Callable[[torch.Tensor, Any, DMLDataset, bool], dict[str, float]]


@dataclass(frozen=True)
class Evaluation:
    """One evaluation: its metrics and the embeddings they came from.

    Attributes:
        metrics: ``recall@K``, ``nmi``, ``f1``, ``map@r``, ``r_precision`` (those configured) and
            the method's own metrics.
        embeddings: (n, dim) query embeddings (CPU, float32).
        labels: (n,) their labels.
        dataset: The query set (images and class names, for figures).
        gallery_embeddings: (m, dim) gallery embeddings of a query/gallery split, else ``None``.
        gallery_labels: Their labels, else ``None``.
        gallery_dataset: The gallery set of a query/gallery split, else ``None``.
    """

    metrics: dict[str, float]
    embeddings: torch.Tensor
    labels: np.ndarray
    dataset: DMLDataset
    gallery_embeddings: torch.Tensor | None = None
    gallery_labels: np.ndarray | None = None
    gallery_dataset: DMLDataset | None = None


class Evaluator:
    """Evaluate the model behind ``embed`` on ``split`` with the protocol of ``cfg`` (``eval.*``).

    Args:
        split: The test side (query set, and gallery for In-Shop).
        cfg: The ``eval`` section (Ks, metric families, distance, kNN backend).
        seed: Seed of the k-means behind NMI and F1.
        embed: Embeds a whole dataset (see :data:`DatasetEmbedder`).
        method_metrics: The method's :meth:`~dmlkit.methods.base.Method.eval_metrics`.
    """

    def __init__(
        self,
        split: EvalSplit,
        cfg: EvalConfig,
        seed: int,
        embed: DatasetEmbedder,
        method_metrics: MethodMetrics | None = None,
    ) -> None:
        self.split, self.cfg, self.seed = split, cfg, seed
        self.embed, self.method_metrics = embed, method_metrics

    def __call__(self, final: bool = True, recall_at: Sequence[int] | None = None) -> Evaluation:
        """Embed the test side and compute every metric.

        Args:
            final: Whether the model is finished (after the last epoch, or restored); methods
                compute some metrics only then (:meth:`~dmlkit.methods.base.Method.eval_metrics`).
            recall_at: Ks of Recall@K instead of ``eval.recall_at``.
        """
        query, q_labels = self.embed(self.split.query)
        gallery, g_labels = (None, None) if self.split.gallery is None else self.embed(self.split.gallery)
        report = evaluate_embeddings(
            query,
            q_labels,
            gallery,
            g_labels,
            recall_at=tuple(recall_at or self.cfg.recall_at),
            metrics=tuple(self.cfg.metrics),
            metric=self.cfg.distance,
            seed=self.seed,
            backend=self.cfg.backend,
        )
        metrics = {k: float(v) for k, v in report.metrics.items()}
        if self.method_metrics is not None:
            own = self.method_metrics(query, q_labels, self.split.query, final)
            metrics.update({k: float(v) for k, v in own.items()})
        labels = np.asarray(q_labels)
        return Evaluation(
            metrics,
            query,
            labels,
            self.split.query,
            gallery,
            None if g_labels is None else np.asarray(g_labels),
            self.split.gallery,
        )
