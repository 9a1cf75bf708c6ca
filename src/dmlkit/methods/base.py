"""The method seam: how a training method plugs into the trainer.

A method owns everything a run trains besides the embedding model: the loss, extra
heads (DVML's decoder, the intra-batch MPN), learnable proxies, memory banks, EMA
teachers. It is an ``nn.Module`` so that its parameters are optimised, moved to the
device and checkpointed with the model. The trainer calls, in order:

1. :meth:`Method.setup` once, with a :class:`MethodContext`;
2. :meth:`Method.batch_sampler` to get the training batches (``None``: the P×K sampler);
3. per epoch :meth:`Method.on_epoch_start` (dataset passes such as Magnet's cluster
   index or PL-Manifold's neighbourhoods go here, through ``ctx.embed_dataset``),
   :meth:`Method.training_step` per batch, :meth:`Method.after_step`, then
   :meth:`Method.on_epoch_end`;
4. :meth:`Method.embed_for_eval` to embed evaluation images (default: the model's
   embedding; Intra-batch uses the backbone only, as at test time), and
   :meth:`Method.eval_metrics` for metrics of its own (Magnet's cluster classifier).

Extra state that is not a parameter or buffer goes through
:meth:`Method.extra_checkpoint_state` / :meth:`Method.load_extra_checkpoint_state`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Sampler

from dmlkit.data.base import DMLDataset

if TYPE_CHECKING:
    from dmlkit.models.model import EmbeddingModel


@dataclass
class StepOutput:
    """What a training step returns: the loss to minimise and scalars to log."""

    loss: torch.Tensor
    logs: dict[str, float] = field(default_factory=dict)


@dataclass
class MethodContext:
    """What the trainer tells a method about the run.

    Attributes:
        train_dataset: Training set with the training transform.
        train_dataset_eval: The same images with the evaluation transform (for dataset passes).
        num_classes: Number of training classes.
        embedding_dim: Size of the model's embedding.
        feature_dim: Size of the backbone's pooled features.
        epochs: Planned number of epochs.
        steps_per_epoch: Optimisation steps per epoch.
        seed: Run seed.
        rank: This process's rank; ``world_size``: number of processes.
        embed_dataset: ``embed_dataset(dataset, embed=None) -> (embeddings, labels)`` embeds a
            whole dataset in eval mode, on all ranks (gathered), with ``embed(images)`` (default:
            :meth:`Method.embed_for_eval` of the model); labels are ``None`` when hidden.
        batch_config: P and K of the configured P×K sampler.
        run_dir: The run directory (methods write their figures under ``run_dir/plots``).
        query_gallery: Whether the test side is a query/gallery split (In-Shop) rather than
            leave-one-out retrieval within one set.
        model: The embedding model being trained (methods that keep a copy, such as an EMA
            teacher, take it here).
    """

    train_dataset: DMLDataset
    train_dataset_eval: DMLDataset
    num_classes: int
    embedding_dim: int
    feature_dim: int
    epochs: int
    steps_per_epoch: int
    seed: int
    rank: int = 0
    world_size: int = 1
    embed_dataset: Callable[..., tuple[torch.Tensor, np.ndarray | None]] | None = None
    batch_config: dict[str, int] = field(default_factory=dict)
    run_dir: Path | None = None
    query_gallery: bool = False
    model: EmbeddingModel | None = None


class Method(nn.Module):
    """Base class of training methods; subclasses implement :meth:`training_step`."""

    #: Whether the run's ``loss`` section is used (``False`` for methods with their own loss).
    uses_loss: bool = True
    #: Whether the method reads training labels; ``False`` (unsupervised): the trainer hands it the
    #: training set with labels hidden, passes ``num_classes = 0`` and needs its batch sampler.
    uses_labels: bool = True

    def setup(self, ctx: MethodContext) -> None:
        """Called once before training (after the model exists, before the optimiser)."""
        self.ctx = ctx

    def training_step(self, model: EmbeddingModel, batch: dict[str, Any]) -> StepOutput:
        """Loss of one batch (``batch["image"]``, ``batch["index"]`` and, if supervised, ``batch["label"]``)."""
        raise NotImplementedError

    def param_groups(self, base_lr: float, lr_mult: float) -> list[dict[str, Any]]:
        """Optimiser groups for this method's own parameters.

        The default gives every trainable parameter ``base_lr * lr_mult``; methods holding
        a loss with its own multiplier (proxies) override or extend this.
        """
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": params, "lr": base_lr * lr_mult, "name": "method"}] if params else []

    def batch_sampler(self, dataset: DMLDataset, seed: int, rank: int, world_size: int) -> Sampler | None:
        """A custom batch sampler, or ``None`` for the default P×K sampler."""
        return None

    def on_epoch_start(self, epoch: int, model: EmbeddingModel) -> None:
        """Hook before each epoch (``epoch`` counts from 0)."""

    def after_step(self, model: EmbeddingModel, step: int) -> None:
        """Hook after each optimiser step (EMA teacher updates go here)."""

    def on_epoch_end(self, epoch: int, model: EmbeddingModel) -> dict[str, float]:
        """Hook after each epoch; returned scalars are logged."""
        return {}

    def embed_for_eval(self, model: EmbeddingModel, images: torch.Tensor) -> torch.Tensor:
        """The test-time embedding of ``images``."""
        return model(images)

    def eval_metrics(
        self, embeddings: torch.Tensor, labels: Any, dataset: DMLDataset, final: bool = False
    ) -> dict[str, float]:
        """Metrics of the method's own, added to the retrieval metrics of each evaluation.

        Args:
            embeddings: (n, dim) test embeddings (from :meth:`embed_for_eval`).
            labels: (n,) their labels, in ``dataset``'s label space.
            dataset: The evaluated dataset (its ``class_names`` relate test to training labels).
            final: Whether this is the evaluation after the last epoch (figures go there).
        """
        return {}

    def extra_checkpoint_state(self) -> dict[str, Any]:
        """State that is not a parameter or buffer (sampler bookkeeping, cluster index)."""
        return {}

    def load_extra_checkpoint_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_checkpoint_state` returned."""


class TrainStep(nn.Module):
    """The model and the method in one module, so ``forward`` is the training step.

    Wrapping both lets Fabric/DDP see one module whose forward produces the loss, so
    gradient synchronisation covers the method's heads too.
    """

    def __init__(self, model: EmbeddingModel, method: Method) -> None:
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, batch: dict[str, Any]) -> StepOutput:
        return self.method.training_step(self.model, batch)
