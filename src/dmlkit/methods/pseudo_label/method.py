"""k-means pseudo-labels for unsupervised DML: the DeepCluster-style baseline of the PL-Manifold issue.

DeepCluster (Caron et al., ECCV 2018) re-clusters the features of the whole training set with k-means
every epoch and trains a classifier on the cluster assignments. Here [decision] the assignments
train the run's metric loss (the ``loss`` section) through P×K batches over pseudo-classes, the form
that the k-means pseudo-label baselines of unsupervised DML take. That is the comparison the
PL-Manifold issue asks for: the same batches, losses and schedule as the supervised runs, with
labels from k-means instead of annotations. Per run:

1. Before every epoch the training set (labels hidden, evaluation transform) is embedded with the
   current model and clustered by k-means into ``clusters`` groups, seed = run seed + epoch
   (:func:`~dmlkit.evaluation.clustering.kmeans`, on the embedding as it is, without DeepCluster's
   PCA whitening). The assignments become the pseudo-labels.
2. :class:`~dmlkit.methods.pseudo_label.sampler.PseudoLabelBatches` draws P pseudo-classes × K
   images per batch (a P×K sampler over the clusters; clusters of one image are left out), a fixed
   number of batches per epoch. Drawing a balanced set of clusters per batch plays the part of
   DeepCluster's uniform sampling over clusters, which keeps large clusters from dominating.
3. Each step, the loss is the metric loss of the embeddings against the pseudo-labels of
   ``batch["index"]``.

No training label is read (``uses_labels = False``: the run hides them and reading one raises).
The pseudo-labels are checkpointed (once, as the method's state), so that a run resumed mid-epoch
continues with them. After every
epoch the cluster statistics of that epoch are logged: ``clusters`` (non-empty), ``cluster_size``
(mean), ``cluster_size_max``, ``singletons`` (left out of the batches) and ``cluster_s`` (seconds of
embedding and k-means).

The loss is built with ``num_classes = 0`` (the run has no classes), so proxy and classifier losses
are not available: pair, triplet and other batch losses only. Cluster ids change meaning at every
re-clustering, so per-class parameters would not carry over between epochs anyway.

Multi-process runs: every rank clusters the same gathered embeddings with the same seed, so every
rank holds the same pseudo-labels, and the epoch sampler shares the batches out across ranks.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dmlkit.errors import ConfigError
from dmlkit.evaluation.clustering import kmeans
from dmlkit.losses import validate
from dmlkit.losses.base import MetricLoss
from dmlkit.methods.base import StepOutput
from dmlkit.methods.metric_loss import MetricLossMethod
from dmlkit.methods.pseudo_label.sampler import PseudoLabelBatches
from dmlkit.methods.registry import METHODS

if TYPE_CHECKING:
    from dmlkit.models.model import EmbeddingModel

KMEANS_BACKENDS = ("auto", "faiss", "sklearn")


@METHODS.register("pseudo_label")
class PseudoLabelMethod(MetricLossMethod):
    """The run's metric loss on k-means pseudo-labels of the training set, re-clustered every epoch.

    Args:
        loss: The metric loss built from the run's ``loss`` section (supplied by the assembly).
        num_examples, seed, batch_shards: Facts of the run (supplied by the assembly); a batch holds
            ``classes_per_batch × batch_shards`` pseudo-classes, ``classes_per_batch`` per process.
        clusters: k of k-means, the number of pseudo-classes (100) [decision: a round number of the
            order of the training classes of the CUB and Cars splits (100, 98); the true class
            count is unknown without labels, so set it per dataset, as the Omniglot config does].
        classes_per_batch: P, pseudo-classes per batch (32; at least 2, at most ``clusters``).
        samples_per_class: K, images per pseudo-class (4; at least 2).
        kmeans_backend: ``auto``, ``faiss`` or ``sklearn`` (see :func:`~dmlkit.evaluation.clustering.kmeans`).
    """

    uses_labels = False

    def __init__(
        self,
        loss: MetricLoss,
        num_examples: int,
        seed: int = 0,
        batch_shards: int = 1,
        clusters: int = 100,
        classes_per_batch: int = 32,
        samples_per_class: int = 4,
        kmeans_backend: str = "auto",
    ) -> None:
        if loss is None:
            raise ConfigError("method 'pseudo_label' needs a metric loss (the run's 'loss' section)")
        super().__init__(loss)
        for key, value in (
            ("clusters", clusters),
            ("classes_per_batch", classes_per_batch),
            ("samples_per_class", samples_per_class),
        ):
            validate.positive_int(f"method.{key}", value)
            validate.greater_than(f"method.{key}", value, 1, "1")
        if classes_per_batch * batch_shards > clusters:
            processes = f" x {batch_shards} processes" if batch_shards > 1 else ""
            raise ConfigError(
                f"config key 'method.classes_per_batch': {classes_per_batch}{processes} exceeds method.clusters "
                f"({clusters})"
            )
        validate.choice("method.kmeans_backend", kmeans_backend, KMEANS_BACKENDS)
        if clusters > num_examples:
            raise ConfigError(f"config key 'method.clusters': {clusters} exceeds the {num_examples} training images")
        self.clusters, self.p, self.k = int(clusters), int(classes_per_batch), int(samples_per_class)
        self.kmeans_backend, self.seed = kmeans_backend, int(seed)
        self.batch_source = PseudoLabelBatches(num_examples, self.p * batch_shards, self.k, self.seed)
        self.pseudo_labels: np.ndarray | None = None
        self._label_tensor: torch.Tensor | None = None
        self.cluster_stats: dict[str, float] = {}
        self._cluster_s = 0.0

    # ---------------------------------------------------------- pseudo-labels
    def install(self, labels: np.ndarray) -> None:
        """Make ``labels`` (one per training example) the pseudo-labels of the batches and the loss."""
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.batch_source.set_labels(labels)
        self.pseudo_labels = labels.copy()
        self._label_tensor = torch.from_numpy(self.pseudo_labels)
        sizes = np.bincount(labels)
        sizes = sizes[sizes > 0]
        self.cluster_stats = {
            "clusters": float(len(sizes)),
            "cluster_size": float(sizes.mean()),
            "cluster_size_max": float(sizes.max()),
            "singletons": float((sizes == 1).sum()),
        }

    def on_epoch_start(self, epoch: int, model: EmbeddingModel) -> None:
        """Embed the training set with the current model and install its k-means clusters as pseudo-labels."""
        start = time.perf_counter()
        embeddings, _ = self._bound().embed_training_set(None)
        labels = kmeans(embeddings, self.clusters, seed=self.seed + epoch, backend=self.kmeans_backend)
        self.install(labels)
        self._cluster_s = time.perf_counter() - start

    # --------------------------------------------------------------- training
    def training_step(self, model: EmbeddingModel, batch: dict[str, Any]) -> StepOutput:
        index = batch["index"]
        if self._label_tensor is None:
            raise RuntimeError("method 'pseudo_label' has no pseudo-labels: on_epoch_start clusters the training set")
        if self._label_tensor.device != index.device:
            self._label_tensor = self._label_tensor.to(index.device)
        embeddings, labels = self.gather(model(batch["image"]), self._label_tensor[index])
        return StepOutput(self.loss(embeddings, labels))

    def on_epoch_end(self, epoch: int, model: EmbeddingModel) -> dict[str, float]:
        """Statistics of the clusters the epoch trained on."""
        summary = {**self.cluster_stats, "cluster_s": round(self._cluster_s, 2)}
        self._cluster_s = 0.0
        return summary

    # ------------------------------------------------------------- checkpoint
    def extra_checkpoint_state(self) -> dict[str, Any]:
        return {"pseudo_labels": None if self.pseudo_labels is None else self.pseudo_labels.copy()}

    def load_extra_checkpoint_state(self, state: dict[str, Any]) -> None:
        if state.get("pseudo_labels") is not None:
            self.install(state["pseudo_labels"])
