"""The simplest method: a metric loss on the embeddings of a P×K batch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dmlkit.losses.base import MetricLoss
from dmlkit.methods.base import Method, StepOutput
from dmlkit.methods.registry import METHODS

if TYPE_CHECKING:
    from dmlkit.models.model import EmbeddingModel


@METHODS.register("metric_loss")
class MetricLossMethod(Method):
    """Train the embedding with one metric loss (every baseline of the papers' tables).

    Args:
        loss: The loss module built from the run's ``loss`` section (supplied by the assembly).
    """

    def __init__(self, loss: MetricLoss) -> None:
        super().__init__()
        self.loss = loss

    def training_step(self, model: EmbeddingModel, batch: dict[str, Any]) -> StepOutput:
        embeddings, labels = self.gather(model(batch["image"]), batch["label"])
        return StepOutput(self.loss(embeddings, labels))

    def param_groups(self, base_lr: float, lr_mult: float) -> list[dict[str, Any]]:
        """The loss's own parameters (proxies) at the loss's ``lr_mult`` times the base LR."""
        params = [p for p in self.loss.parameters() if p.requires_grad]
        return [{"params": params, "lr": base_lr * self.loss.lr_mult, "name": "loss"}] if params else []
