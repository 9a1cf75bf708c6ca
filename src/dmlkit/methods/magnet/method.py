"""The magnet-loss method (Rippel et al. 2016): cluster index, neighbourhood sampling, magnet loss.

Per run:

1. Before the first epoch, and after every ``refresh_every_epochs`` epochs (or every
   ``refresh_every_steps`` optimiser steps), the training set is embedded (evaluation transform) and
   k-means is run per class (:func:`~dmlkit.methods.magnet.cluster_index.build_cluster_index`).
   The index is also rebuilt after the last epoch, so that the classifier and the final plot use
   the trained embedding. The refresh time is logged and printed with the epoch line
   (``refresh_s``). The index is checkpointed, so ``dmlkit eval`` reports the classifier too.
2. Each batch is a neighbourhood (:class:`~dmlkit.methods.magnet.sampler.NeighbourhoodBatches`):
   M clusters × D examples, seed cluster drawn ∝ its recent mean loss.
3. The loss is the minibatch magnet loss (:func:`dmlkit.losses.magnet.magnet_loss`) with the batch
   clusters recovered by position (D consecutive indices per cluster). Per-example losses go back
   to the sampler.
4. Evaluation adds ``accuracy`` of the cluster classifier (L nearest cluster means, σ² = mean of
   the batch σ̂² since the previous refresh) when every test class is a training class (closed
   set, e.g. ``mnist_closed``); zero-shot splits get the retrieval metrics only.
5. With ``plots: true`` (default) the run directory gets ``plots/initial_distribution.png``
   (training set before training, with the first cluster centres), and after training
   ``plots/final_distribution.png`` and ``plots/loss.png`` (loss against iterations).

Multi-process runs: every rank embeds the whole training set (gathered) and builds the same
index; the ranks share each epoch's batches out and each keeps the losses of its own batches.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dmlkit.data.base import DMLDataset
from dmlkit.errors import ConfigError
from dmlkit.losses import validate
from dmlkit.losses.magnet import magnet_loss
from dmlkit.methods.base import Method, StepOutput
from dmlkit.methods.magnet.classify import cluster_classify
from dmlkit.methods.magnet.cluster_index import ClusterIndex, build_cluster_index
from dmlkit.methods.magnet.sampler import NeighbourhoodBatches
from dmlkit.methods.registry import METHODS
from dmlkit.visualization import plot_distribution, plot_loss

if TYPE_CHECKING:
    from dmlkit.evaluation.evaluator import Evaluation
    from dmlkit.models.model import EmbeddingModel


@METHODS.register("magnet")
class MagnetMethod(Method):
    """Magnet loss with a per-class k-means cluster index and neighbourhood sampling.

    Args:
        num_classes, class_names, num_examples, epochs, seed, batch_shards: Facts of the run (supplied by
            the assembly; the training class names map a closed test set onto the clusters' classes).
        clusters_per_class: K, k-means clusters per class (K = 1: unimodal magnet loss).
        clusters_per_batch: M, clusters in a batch per process (seed + M − 1 nearest impostor
            clusters). Under ``batch_shards`` processes sharing a batch, one neighbourhood of
            M × ``batch_shards`` clusters is drawn for all of them, each process embedding M whole
            clusters, and the loss and the per-example losses (the seed weights) are those of the
            gathered neighbourhood, the same on every process.
        samples_per_cluster: D, examples drawn per cluster; batch size M·D.
        alpha: Margin α (cluster separation gap), 1.0 in the reference implementations.
        refresh_every_epochs: Rebuild the cluster index after every N epochs (default 1; 0: never
            by epoch).
        refresh_every_steps: Also rebuild it every N optimiser steps (default 0: off).
        eval_neighbours: L, nearest cluster means of the classifier (128).
        kmeans_iters: Lloyd iterations of the per-class k-means (20).
        eps: Lower clamp of the batch variance σ̂².
        plots: Write the distribution and loss plots into the run directory.
    """

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str],
        num_examples: int,
        epochs: int,
        seed: int = 0,
        batch_shards: int = 1,
        clusters_per_class: int = 3,
        clusters_per_batch: int = 12,
        samples_per_cluster: int = 4,
        alpha: float = 1.0,
        refresh_every_epochs: int = 1,
        refresh_every_steps: int = 0,
        eval_neighbours: int = 128,
        kmeans_iters: int = 20,
        eps: float = 1e-8,
        plots: bool = True,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ConfigError(
                f"method 'magnet' needs at least two training classes, the training set has {num_classes}"
            )
        for key, value in (
            ("clusters_per_class", clusters_per_class),
            ("samples_per_cluster", samples_per_cluster),
            ("eval_neighbours", eval_neighbours),
            ("kmeans_iters", kmeans_iters),
        ):
            validate.positive_int(f"method.{key}", value)
        validate.non_negative_int("method.refresh_every_epochs", refresh_every_epochs)
        validate.non_negative_int("method.refresh_every_steps", refresh_every_steps)
        validate.positive_int("method.clusters_per_batch", clusters_per_batch)
        if clusters_per_batch < 2:
            raise ConfigError("config key 'method.clusters_per_batch': must be >= 2 (a seed and an impostor cluster)")
        validate.at_least("method.alpha", alpha)
        validate.positive("method.eps", eps)
        self.k, self.m, self.d = clusters_per_class, clusters_per_batch, samples_per_cluster
        self.refresh_every_epochs, self.refresh_every_steps = refresh_every_epochs, refresh_every_steps
        self.eval_neighbours, self.kmeans_iters = eval_neighbours, kmeans_iters
        self.alpha, self.eps, self.plots = float(alpha), float(eps), bool(plots)
        self.class_names, self.epochs, self.seed = list(class_names), int(epochs), int(seed)
        # running mean of the batch variance since the last refresh, and the classifier's σ²
        self.register_buffer("variance_sum", torch.zeros((), dtype=torch.float64))
        self.register_buffer("variance_count", torch.zeros((), dtype=torch.int64))
        self.register_buffer("eval_variance", torch.ones((), dtype=torch.float64))
        self.index: ClusterIndex | None = None
        # one neighbourhood of M clusters per process and step, drawn for all processes together
        self.batch_source = NeighbourhoodBatches(num_examples, self.m * batch_shards, self.d, self.seed)
        self.loss_history: list[float] = []
        self.refreshes = 0
        self._refresh_s = 0.0
        self._last_embedding: tuple[np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------ cluster index
    def refresh(self, model: EmbeddingModel) -> float:
        """Embed the training set, rebuild the per-class k-means index and hand it to the sampler."""
        start = time.perf_counter()
        emb, labels = self._bound().embed_training_set(None)
        emb = emb.float().cpu()
        index = build_cluster_index(emb, labels, self.k, seed=self.seed + self.refreshes, max_iter=self.kmeans_iters)
        self._install(index)
        if int(self.variance_count) > 0:
            self.eval_variance.fill_(float(self.variance_sum / self.variance_count))
            self.variance_sum.zero_()
            self.variance_count.zero_()
        self.refreshes += 1
        seconds = time.perf_counter() - start
        self._refresh_s += seconds
        self._last_embedding = (emb.numpy(), np.asarray(labels))
        return seconds

    def _install(self, index: ClusterIndex) -> None:
        self.index = index
        self.batch_source.set_index(index)

    # ------------------------------------------------------------------ hooks
    def on_epoch_start(self, epoch: int, model: EmbeddingModel) -> None:
        if self.index is None:
            self.refresh(model)
            if epoch == 0:
                self._plot_distribution("initial_distribution.png", "before training")

    def training_step(self, model: EmbeddingModel, batch: dict[str, Any]) -> StepOutput:
        labels = batch["label"]
        if len(labels) % self.d:
            raise RuntimeError(
                f"method 'magnet' expects batches of whole clusters of {self.d} examples from its own "
                f"sampler, got a batch of {len(labels)}"
            )
        embeddings, labels, index = self.gather(model(batch["image"]), labels, batch["index"])
        cluster = torch.arange(len(labels), device=labels.device) // self.d
        out = magnet_loss(embeddings, cluster, labels, self.alpha, self.eps)
        self.batch_source.record_losses(index.cpu().numpy(), out.per_example.detach().cpu().numpy())
        self.variance_sum += out.variance.to(self.variance_sum.dtype)
        self.variance_count += 1
        value = float(out.loss.detach())
        self.loss_history.append(value)
        return StepOutput(out.loss, {"variance": float(out.variance)})

    def after_step(self, model: EmbeddingModel, step: int) -> None:
        if self.refresh_every_steps and (step + 1) % self.refresh_every_steps == 0:
            self.refresh(model)

    def on_epoch_end(self, epoch: int, model: EmbeddingModel) -> dict[str, float]:
        last = epoch + 1 == self.epochs
        by_epoch = self.refresh_every_epochs and (epoch + 1) % self.refresh_every_epochs == 0
        if last or by_epoch:
            self.refresh(model)
        summary = {"refresh_s": round(self._refresh_s, 2), "sigma2": float(self.eval_variance)}
        self._refresh_s = 0.0
        return summary

    def on_train_end(self, evaluation: Evaluation) -> None:
        """The final training-set distribution (after the last refresh) and the loss curve."""
        self._plot_distribution("final_distribution.png", f"after {self.epochs} epochs")
        if self.plots and self.plots_dir is not None and self.loss_history:
            plot_loss(self.plots_dir / "loss.png", self.loss_history, f"magnet loss (α = {self.alpha})")

    def _plot_distribution(self, name: str, when: str) -> None:
        if not self.plots or self.plots_dir is None or self.index is None or self._last_embedding is None:
            return
        emb, labels = self._last_embedding
        plot_distribution(
            self.plots_dir / name,
            emb,
            labels,
            self.index.centroids,
            title=f"training set {when}; {self.index.num_clusters} clusters",
            class_names=self.class_names,
            seed=self.seed,
        )

    # ------------------------------------------------------------- evaluation
    def eval_metrics(
        self, embeddings: torch.Tensor, labels: Any, dataset: DMLDataset, final: bool = False
    ) -> dict[str, float]:
        """``accuracy`` of the cluster classifier when the test classes are training classes."""
        if self.index is None:
            return {}
        train_names = {name: i for i, name in enumerate(self.class_names)}
        if not set(dataset.class_names) <= set(train_names):
            return {}  # zero-shot split: the classifier cannot name unseen classes
        to_train = torch.as_tensor([train_names[name] for name in dataset.class_names])
        truth = to_train[torch.as_tensor(np.asarray(labels), dtype=torch.int64)]
        predicted = cluster_classify(
            embeddings.float(),
            self.index.centroids,
            self.index.cluster_class,
            float(self.eval_variance),
            self.eval_neighbours,
        ).cpu()
        return {"accuracy": float((predicted == truth).double().mean())}

    def metric_names(self) -> set[str]:
        return {"accuracy"}

    # ------------------------------------------------------------- checkpoint
    def extra_checkpoint_state(self) -> dict[str, Any]:
        return {
            "index": None if self.index is None else self.index.state_dict(),
            "loss_history": list(self.loss_history),
            "refreshes": self.refreshes,
            "batches": self.batch_source.state_dict(),
        }

    def load_extra_checkpoint_state(self, state: dict[str, Any]) -> None:
        if state.get("index") is not None:
            self._install(ClusterIndex.from_state_dict(state["index"]))
        self.loss_history = list(state.get("loss_history", []))
        self.refreshes = int(state.get("refreshes", 0))
        if state.get("batches") is not None:
            self.batch_source.load_state_dict(state["batches"])
