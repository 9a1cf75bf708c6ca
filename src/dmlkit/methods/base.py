"""The method seam: how a training method plugs into a run.

A method owns everything a run trains besides the embedding model: the loss, extra heads
(DVML's decoder, the intra-batch MPN), learnable proxies, EMA teachers, cluster indices. It is
an ``nn.Module``, so that its parameters are optimised, moved to the device and checkpointed
with the model.

**Built in one phase.** The assembly (:mod:`dmlkit.assembly`) builds a method from its config
section plus the values its constructor asks for by name
(:data:`~dmlkit.facts.INJECTED_METHOD_ARGS`, never settable from the config):

* ``loss`` — the run's loss, built from the ``loss`` section. A method whose constructor takes
  no ``loss`` has a loss of its own, and a ``loss`` section in its config is an error.
* ``model`` — the embedding model, for a method that keeps a copy of it (PL-Manifold's EMA
  teacher). A method never stores the model itself: the trainer owns it.
* any field of :class:`~dmlkit.facts.RunFacts` — ``num_classes``, ``class_names``,
  ``num_examples``, ``feature_dim``, ``embedding_dim``, ``epochs``, ``eval_every``, ``seed``,
  ``query_gallery``, ...

Every parameter and buffer is created in the constructor. Restoring a run is therefore "build from
its config and facts, load the checkpoint", the same for every method. The config check
(:func:`dmlkit.assembly.check_config`) also constructs the method, on the meta device and with
placeholder data facts (1000 classes, 10⁶ images), so a constructor validates its parameters and
creates its modules, and leaves work on the data to the hooks.

**Batches.** A method that draws its own batches sets :attr:`Method.batch_source` in its
constructor (a :class:`~dmlkit.data.samplers.BatchSource`); otherwise the run uses the P×K source
over the training labels (``data.classes_per_batch`` × ``data.samples_per_class``). A method with
``uses_labels = False`` never sees a training label, so it must bring its source.

**Several processes.** A step's batch may be a shard of the global batch (``trainer.distributed_batch:
global``): a method passes what it computed per example to :meth:`Method.gather` before anything
that depends on the whole batch (the loss, batch statistics, random draws of the batch's shape),
and draws its own batches for the global batch (``batch_shards`` × its per-batch groups).

**Run-time services** (training only) are bound after construction with :meth:`Method.bind`: a
:class:`MethodRuntime` that embeds the training set and names the folder for figures. Binding
creates no parameter (the assembly checks).

**Call order.** Training: the constructor, :meth:`bind`; then for every epoch ``e`` (from 0):
:meth:`restore_best_before` (when it says so, the trainer reloads ``best.pt``'s weights),
:meth:`on_epoch_start` (skipped when a run resumes in the middle of the epoch), per batch
:meth:`training_step` and :meth:`after_step`, then :meth:`on_epoch_end`. Every evaluation embeds
the test images with :meth:`embed_for_eval` and adds :meth:`eval_metrics`; after the final one,
:meth:`on_train_end` gets that evaluation (figures go there). A run restored for ``dmlkit eval``
or ``embed`` is constructed (not bound) and evaluated only.

State that is not a parameter or buffer (a cluster index, neighbour lists, pseudo-labels) goes
through :meth:`Method.extra_checkpoint_state` / :meth:`Method.load_extra_checkpoint_state`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from dmlkit.data.base import DMLDataset
from dmlkit.distributed import BatchGather

if TYPE_CHECKING:
    from dmlkit.data.samplers import BatchSource
    from dmlkit.evaluation.evaluator import Evaluation
    from dmlkit.models.model import EmbeddingModel

#: ``embed(images) -> embeddings``, as :meth:`Method.embed_for_eval` without the model.
EmbedFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class StepOutput:
    """What a training step returns: the loss to minimise and scalars to log.

    A logged value may be a 0-d tensor (detached): the trainer reads it on logging steps only, so a
    step need not wait for the device (``float(tensor)`` in a step is a host sync).
    """

    loss: torch.Tensor
    logs: dict[str, float | torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodRuntime:
    """The run-time services of a training run, bound to a method by :meth:`Method.bind`.

    Attributes:
        embed_training_set: ``embed_training_set(embed=None) -> (embeddings, labels)`` embeds the
            whole training set (evaluation transform) in eval mode on every rank (gathered), with
            ``embed(images)`` (default: :meth:`Method.embed_for_eval` of the current model);
            ``labels`` is ``None`` when they are hidden.
        plots_dir: Where the method writes its figures (``RUN_DIR/plots``); ``None`` on every
            process but the first, so that a figure is written once.
        gather: Gathers a step's shards into the global batch under several processes
            (:class:`~dmlkit.distributed.BatchGather`; the identity for one process).
    """

    embed_training_set: Callable[[EmbedFn | None], tuple[torch.Tensor, np.ndarray | None]]
    plots_dir: Path | None = None
    gather: BatchGather = field(default_factory=BatchGather)


class Method(nn.Module):
    """Base class of training methods; subclasses implement :meth:`training_step`."""

    #: Whether the method reads training labels; ``False`` (unsupervised): the run hands it the
    #: training set with labels hidden, ``num_classes = 0``, and it must set :attr:`batch_source`.
    uses_labels: ClassVar[bool] = True
    #: The method's own training batches (set in the constructor); ``None``: the P×K source.
    batch_source: BatchSource | None = None

    def __init__(self) -> None:
        super().__init__()
        self.runtime: MethodRuntime | None = None

    def bind(self, runtime: MethodRuntime) -> None:
        """Attach the services of a training run (see :class:`MethodRuntime`); creates no parameter."""
        self.runtime = runtime

    def _bound(self) -> MethodRuntime:
        if self.runtime is None:
            raise RuntimeError(f"{type(self).__name__} needs a training run (Method.bind) for this hook")
        return self.runtime

    def gather(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The global batch of each tensor computed from this process's shard (dim 0 the batch).

        Under several processes with ``trainer.distributed_batch: global`` a step's batch is shared
        out across them; a method computes what needs the batch (a metric loss, batch statistics, the
        MPN's attention) on the gathered tensors, in the single-process order, and the gradient
        reaches the model through this process's shard (:mod:`dmlkit.distributed`). Otherwise, and
        for a method that is not bound, the tensors come back unchanged.
        """
        return tensors if self.runtime is None else self.runtime.gather(*tensors)

    @property
    def plots_dir(self) -> Path | None:
        """Where figures go, or ``None`` (not bound, or not the first process)."""
        return None if self.runtime is None else self.runtime.plots_dir

    def training_step(self, model: EmbeddingModel, batch: dict[str, Any]) -> StepOutput:
        """Loss of one batch (``batch["image"]``, ``batch["index"]`` and, if supervised, ``batch["label"]``)."""
        raise NotImplementedError

    def param_groups(self, base_lr: float, lr_mult: float) -> list[dict[str, Any]]:
        """Optimiser groups for this method's own parameters.

        The default gives every trainable parameter ``base_lr * lr_mult`` (``optimizer.method_lr_mult``);
        methods holding a loss with its own multiplier (proxies) override or extend this.
        """
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": params, "lr": base_lr * lr_mult, "name": "method"}] if params else []

    def restore_best_before(self, epoch: int) -> bool:
        """Whether the trainer restores the weights of ``best.pt`` before ``epoch`` (from 0) starts.

        Model and method parameters and buffers are restored; the optimiser, the LR schedule, the
        RNGs and :meth:`extra_checkpoint_state` go on. Default: never.
        """
        return False

    def on_epoch_start(self, epoch: int, model: EmbeddingModel) -> None:
        """Hook before each epoch (``epoch`` counts from 0)."""

    def after_step(self, model: EmbeddingModel, step: int) -> None:
        """Hook after each optimiser step (EMA teacher updates go here)."""

    def on_epoch_end(self, epoch: int, model: EmbeddingModel) -> dict[str, float]:
        """Hook after each epoch; returned scalars are logged and printed."""
        return {}

    def on_train_end(self, evaluation: Evaluation) -> None:
        """Hook after the final evaluation, with its embeddings (figures go here)."""

    def embed_for_eval(self, model: EmbeddingModel, images: torch.Tensor) -> torch.Tensor:
        """The test-time embedding of ``images``."""
        return model(images)

    def eval_metrics(
        self, embeddings: torch.Tensor, labels: Any, dataset: DMLDataset, final: bool = False
    ) -> dict[str, float]:
        """Metrics of the method's own, added to the retrieval metrics of each evaluation.

        Args:
            embeddings: (n, dim) query embeddings (from :meth:`embed_for_eval`).
            labels: (n,) their labels, in ``dataset``'s label space.
            dataset: The evaluated query set (its ``class_names`` relate test to training labels).
            final: Whether the model is finished: the evaluation after the last epoch, and every
                evaluation of a restored run (``dmlkit eval``), so that both report the same keys.
        """
        return {}

    def summary(self) -> dict[str, Any]:
        """Settings the method derived (a phase schedule, ...), shown in the start-of-run summary."""
        return {}

    def metric_names(self) -> set[str]:
        """The names :meth:`eval_metrics` may add; ``eval.best_metric`` is checked against them (and the
        retrieval metrics) before training."""
        return set()

    def extra_checkpoint_state(self) -> dict[str, Any]:
        """State that is not a parameter or buffer (a cluster index, neighbour lists)."""
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
