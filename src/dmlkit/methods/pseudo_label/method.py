"""k-means pseudo-labels for unsupervised DML: the DeepCluster-style baseline of the PL-Manifold issue.

DeepCluster (Caron et al., ECCV 2018) alternates k-means on the current features with training a
classifier on the cluster assignments. Here [decision] the assignments train the run's metric loss
(``loss`` section) through P×K batches of pseudo-classes — the form the k-means pseudo-label
baselines of unsupervised DML take — so that it compares with PL-Manifold on equal terms. Before
every epoch the training set (labels hidden, evaluation transform) is embedded with the current
model and clustered into ``clusters`` groups (k-means, seed = run seed + epoch). No training label
is read (``uses_labels = False``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dmlkit.data.base import DMLDataset
from dmlkit.errors import ConfigError
from dmlkit.evaluation.clustering import kmeans
from dmlkit.losses import validate
from dmlkit.losses.base import MetricLoss
from dmlkit.methods.base import StepOutput
from dmlkit.methods.metric_loss import MetricLossMethod
from dmlkit.methods.pseudo_label.sampler import PseudoLabelSampler
from dmlkit.methods.registry import METHODS

if TYPE_CHECKING:
    from dmlkit.models.model import EmbeddingModel

KMEANS_BACKENDS = ("auto", "faiss", "sklearn")


@METHODS.register("pseudo_label")
class PseudoLabelMethod(MetricLossMethod):
    """The run's metric loss on k-means pseudo-labels, re-clustered before every epoch.

    Args:
        loss: The metric loss (the run's ``loss`` section).
        loss_lr_mult: LR multiplier of the loss's parameters (``None``: the loss's own).
        clusters: k of k-means (100) [decision: a hyper-parameter, not the unknown class count].
        classes_per_batch, samples_per_class: P and K over the pseudo-classes (32 × 4).
        kmeans_backend: ``auto``, ``faiss`` or ``sklearn`` (see :func:`dmlkit.evaluation.clustering.kmeans`).
    """

    uses_labels = False

    def __init__(
        self,
        loss: MetricLoss,
        loss_lr_mult: float | None = None,
        clusters: int = 100,
        classes_per_batch: int = 32,
        samples_per_class: int = 4,
        kmeans_backend: str = "auto",
    ) -> None:
        super().__init__(loss, loss_lr_mult)
        validate.positive_int("method.clusters", clusters)
        validate.greater_than("method.clusters", clusters, 1, "1")
        validate.positive_int("method.classes_per_batch", classes_per_batch)
        validate.greater_than("method.classes_per_batch", classes_per_batch, 1, "1")
        validate.positive_int("method.samples_per_class", samples_per_class)
        validate.greater_than("method.samples_per_class", samples_per_class, 1, "1")
        validate.choice("method.kmeans_backend", kmeans_backend, KMEANS_BACKENDS)
        self.clusters, self.p, self.k = int(clusters), int(classes_per_batch), int(samples_per_class)
        self.kmeans_backend = kmeans_backend
        self.sampler: PseudoLabelSampler | None = None

    def batch_sampler(self, dataset: DMLDataset, seed: int, rank: int, world_size: int) -> PseudoLabelSampler:
        if self.clusters > len(dataset):
            raise ConfigError(
                f"config key 'method.clusters': {self.clusters} exceeds the training set size {len(dataset)}"
            )
        self.sampler = PseudoLabelSampler(len(dataset), self.p, self.k, seed, rank, world_size)
        return self.sampler

    def on_epoch_start(self, epoch: int, model: EmbeddingModel) -> None:
        """Cluster the current embedding of the training set; the assignments become the pseudo-labels."""
        assert self.sampler is not None and self.ctx.embed_dataset is not None
        embeddings, _ = self.ctx.embed_dataset(self.ctx.train_dataset_eval)
        labels = kmeans(embeddings, self.clusters, seed=self.ctx.seed + epoch, backend=self.kmeans_backend)
        self.sampler.set_labels(labels)

    def training_step(self, model: EmbeddingModel, batch: dict[str, Any]) -> StepOutput:
        if "label" in batch:
            raise RuntimeError("pseudo_label received training labels; the trainer must hide them")
        assert self.sampler is not None and self.sampler.labels is not None
        pseudo = torch.as_tensor(self.sampler.labels, device=batch["index"].device)[batch["index"]]
        loss = self.loss(model(batch["image"]), pseudo)
        sizes = np.bincount(self.sampler.labels)
        return StepOutput(loss, {"clusters_used": float((sizes > 0).sum())})
