"""Intra-batch connections (Seidenschwarz, Elezi, Leal-Taixé, ICML 2021): train the embedding through a
message passing network over the batch; use the backbone embedding alone at test time.

Per batch: fc7 = the model's unnormalised projection of the pooled features; a biased linear classifier
on fc7 gives the backbone logits; the L2-normalised fc7 of the whole batch goes through the
:class:`~dmlkit.methods.intra_batch.mpn.MessagePassingNetwork`, whose classifier gives the MPN logits.
The loss is the sum of the label-smoothed (ε), temperature-scaled (T) cross-entropies of both. The
MPN loss reaches the backbone through fc7; at test time the MPN is not used (the default
``embed_for_eval``: the model's normalised fc7). Configure ``model.normalize: true`` and, as the paper,
``model.pooling: max``.

The reference's schedule is an option (``reload_best_at``): before the named epochs the trainer restores
the weights of ``best.pt`` (:meth:`~dmlkit.methods.base.Method.restore_best_before`); with
``scheduler: {name: multistep, milestones: [30]}`` this is "reload the best and set LR = base/10 at
epochs 31 and 51". ``best.pt`` is selected on the evaluation split, so figures from this schedule
select on the test set; it is for reproducing the reference only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from dmlkit.data.base import DMLDataset
from dmlkit.errors import ConfigError
from dmlkit.evaluation.evaluate import evaluate_embeddings
from dmlkit.losses import validate
from dmlkit.methods.base import Method, StepOutput
from dmlkit.methods.intra_batch.mpn import NORMALISATIONS, MessagePassingNetwork, smoothed_cross_entropy
from dmlkit.methods.intra_batch.refinement import refine_embeddings
from dmlkit.methods.registry import METHODS

if TYPE_CHECKING:
    from dmlkit.models.model import EmbeddingModel


#: Ks of the refined Recall@K (the reference's).
REFINED_RECALL_AT = (1, 2, 4, 8)


@METHODS.register("intra_batch")
class IntraBatchMethod(Method):
    """Backbone cross-entropy plus MPN cross-entropy over the batch graph.

    Args:
        num_classes: Training classes (supplied by the assembly).
        embedding_dim: fc7 size (supplied by the assembly).
        epochs, eval_every, query_gallery, seed: Facts of the run (supplied by the assembly).
        layers, heads, ff_dim, dropout, concat, attention: The MPN (see
            :class:`~dmlkit.methods.intra_batch.mpn.MessagePassingNetwork`; ``attention`` is its
            normalisation, ``extra_zero`` or ``softmax``).
        temperature: T dividing both heads' logits (CUB 0.2, Cars 1/9, In-Shop 0.1859).
        label_smoothing: ε of both cross-entropies (0.1).
        mpn_weight: Weight of the MPN cross-entropy (1; 0 trains the backbone classifier alone).
        test_refinement: After the last epoch, also report Recall@1/2/4/8 and MAP@R of the test
            embeddings refined through the MPN over k-reciprocal groups (``refined_*``; the official
            code's "pseudo test", an extra — the main metrics stay the backbone's). ``refinement_k1``
            (30) and ``refinement_group`` (7) as the reference; leave-one-out test sets only.
        reload_best_at: 1-based epoch numbers before which the weights of ``best.pt`` are restored
            (empty by default; the reference: ``[31, 51]``, see the module docstring). Each must be
            in ``2..epochs`` and come after an evaluation (``trainer.eval_every``).
    """

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        epochs: int = 1,
        eval_every: int = 1,
        query_gallery: bool = False,
        seed: int = 0,
        layers: int = 1,
        heads: int = 2,
        ff_dim: int | None = None,
        dropout: float = 0.1,
        concat: bool = False,
        attention: str = "extra_zero",
        temperature: float = 0.2,
        label_smoothing: float = 0.1,
        mpn_weight: float = 1.0,
        test_refinement: bool = False,
        refinement_k1: int = 30,
        refinement_group: int = 7,
        reload_best_at: Sequence[int] = (),
    ) -> None:
        super().__init__()
        validate.positive_int("method.layers", layers)
        validate.positive_int("method.heads", heads)
        if embedding_dim % heads:
            raise ConfigError(f"config key 'method.heads': {heads} does not divide the embedding size {embedding_dim}")
        if attention not in NORMALISATIONS:
            raise ConfigError(f"config key 'method.attention': expected one of {NORMALISATIONS}, got {attention!r}")
        validate.positive("method.temperature", temperature)
        if not isinstance(label_smoothing, (int, float)) or not 0 <= label_smoothing < 1:
            raise ConfigError(
                f"config key 'method.label_smoothing': expected a number in [0, 1), got {label_smoothing!r}"
            )
        validate.at_least("method.mpn_weight", mpn_weight)
        validate.positive_int("method.refinement_k1", refinement_k1)
        validate.positive_int("method.refinement_group", refinement_group)
        if refinement_group > refinement_k1 + 1:
            raise ConfigError(
                f"config key 'method.refinement_group': at most refinement_k1 + 1 = {refinement_k1 + 1}, "
                f"got {refinement_group}"
            )
        if test_refinement and query_gallery:
            raise ConfigError(
                "config key 'method.test_refinement': implemented for leave-one-out test sets (CUB, Cars, SOP, "
                "Omniglot, MNIST), not for a query/gallery split such as In-Shop's"
            )
        self.reload_best_at = _reload_epochs(reload_best_at, epochs, eval_every)
        self.seed = int(seed)
        self.classifier = nn.Linear(embedding_dim, num_classes)
        self.mpn = MessagePassingNetwork(embedding_dim, num_classes, layers, heads, ff_dim, dropout, concat, attention)
        self.temperature = float(temperature)
        self.smoothing = float(label_smoothing)
        self.mpn_weight = float(mpn_weight)
        self.test_refinement = bool(test_refinement)
        self.refinement_k1, self.refinement_group = int(refinement_k1), int(refinement_group)

    def restore_best_before(self, epoch: int) -> bool:
        return epoch + 1 in self.reload_best_at

    def training_step(self, model: EmbeddingModel, batch: dict[str, Any]) -> StepOutput:
        fc7, labels = self.gather(model.project(model.features(batch["image"])), batch["label"])
        backbone_ce = smoothed_cross_entropy(self.classifier(fc7), labels, self.smoothing, self.temperature)
        logs = {"ce_backbone": backbone_ce.detach()}
        loss = backbone_ce
        if self.mpn_weight:
            mpn_ce = smoothed_cross_entropy(self.mpn(F.normalize(fc7, dim=1)), labels, self.smoothing, self.temperature)
            loss = loss + self.mpn_weight * mpn_ce
            logs["ce_mpn"] = mpn_ce.detach()
        return StepOutput(loss, logs)

    def eval_metrics(
        self, embeddings: torch.Tensor, labels: Any, dataset: DMLDataset, final: bool = False
    ) -> dict[str, float]:
        """For a finished model: the metrics of the MPN-refined embeddings, if asked for."""
        if not (final and self.test_refinement):
            return {}
        if len(embeddings) <= self.refinement_k1:
            raise ConfigError(
                f"config key 'method.refinement_k1': {self.refinement_k1} needs more than that many test "
                f"images, the test set has {len(embeddings)}"
            )
        refined = refine_embeddings(self.mpn, embeddings, self.refinement_k1, self.refinement_group)
        report = evaluate_embeddings(refined, labels, recall_at=REFINED_RECALL_AT, metrics=("recall", "map@r"))
        return {f"refined_{k}": float(v) for k, v in report.metrics.items()}

    def metric_names(self) -> set[str]:
        if not self.test_refinement:
            return set()
        return {f"refined_recall@{k}" for k in REFINED_RECALL_AT} | {"refined_map@r"}


def _reload_epochs(at: Sequence[int], epochs: int, eval_every: int) -> tuple[int, ...]:
    """``method.reload_best_at`` checked: epochs in ``2..epochs``, the first after an evaluation."""
    at = tuple(at) if isinstance(at, (list, tuple)) else (at,)
    if any(not isinstance(e, int) or isinstance(e, bool) or not 2 <= e <= epochs for e in at):
        raise ConfigError(
            f"config key 'method.reload_best_at': expected epoch numbers in 2..{epochs} (trainer.epochs), "
            f"got {list(at)}"
        )
    if at and min(at) - 1 < eval_every:
        raise ConfigError(
            f"config key 'method.reload_best_at': epoch {min(at)} comes before the first evaluation "
            f"(trainer.eval_every={eval_every}), so there is no best checkpoint to reload"
        )
    return at
