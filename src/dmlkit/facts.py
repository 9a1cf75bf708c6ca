"""What a run is, derived once from its config and its training set.

The assembly (:mod:`dmlkit.assembly`) derives a :class:`RunFacts` when it builds a run and stores
it in every checkpoint; a run restored for ``dmlkit eval`` or ``embed`` takes it from there, so
neither needs the training data. Methods receive the facts they declare: a method whose
constructor has a parameter named like a field (``num_classes``, ``feature_dim``, ``epochs``, ...)
gets that field's value, and such a name can never be set from the config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RunFacts:
    """Static facts of one run.

    Attributes:
        dataset: ``data.dataset``, the training dataset's registered name.
        mode: Image mode of that dataset, ``RGB`` or ``L`` (gray).
        image_size: Side of the model's input images (``data.image_size`` or the dataset's default).
        feature_dim: Size of the backbone's pooled features.
        embedding_dim: Size of the embedding.
        supervised: Whether the method reads training labels.
        num_classes: Training classes (0 when the labels are hidden).
        class_names: Names of the training classes, in label order (empty when hidden).
        num_examples: Training images.
        query_gallery: Whether the test side is a query/gallery split (In-Shop) rather than
            leave-one-out retrieval in one set.
        epochs: ``trainer.epochs``.
        eval_every: ``trainer.eval_every``.
        seed: ``seed``.
        world_size: Processes that train the run (``trainer.devices`` × ``trainer.num_nodes`` as launched).
        batch_shards: Processes whose shards make one training batch: ``world_size`` under
            ``trainer.distributed_batch: global``, else 1. A method that draws its own batches
            multiplies its per-batch group count (clusters, queries, classes) by it.
    """

    dataset: str
    mode: str
    image_size: int
    feature_dim: int
    embedding_dim: int
    supervised: bool
    num_classes: int
    class_names: tuple[str, ...]
    num_examples: int
    query_gallery: bool
    epochs: int
    eval_every: int
    seed: int
    world_size: int = 1
    batch_shards: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Plain data (stored in checkpoints)."""
        return {**dataclasses.asdict(self), "class_names": list(self.class_names)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunFacts:
        """The inverse of :meth:`to_dict`."""
        return cls(**{**data, "class_names": tuple(data["class_names"])})

    def injectable(self) -> dict[str, Any]:
        """The values methods and losses may ask for by parameter name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


#: Names a method's constructor may take that the assembly supplies (never the user).
INJECTED_METHOD_ARGS = ("loss", "model", *(f.name for f in dataclasses.fields(RunFacts)))
