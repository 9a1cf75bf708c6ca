"""The components of a run built from its config and facts: model, loss, method, batches, optimiser.

The same functions serve the dry build of :func:`~dmlkit.assembly.check.check_config` (on the meta
device, with placeholder data facts), the training run, and a restored run.
"""

from __future__ import annotations

from typing import Any

import torch

from dmlkit.assembly.data import image_size
from dmlkit.config import RunConfig
from dmlkit.data.base import DMLDataset
from dmlkit.data.registry import get_dataset_spec
from dmlkit.data.samplers import BatchSource, PKBatches
from dmlkit.errors import ConfigError, NeedsClassesError
from dmlkit.facts import RunFacts
from dmlkit.losses import LOSSES, build_loss
from dmlkit.losses.base import MetricLoss
from dmlkit.methods import METHODS, Method
from dmlkit.models import build_model as build_embedding_model
from dmlkit.models.model import EmbeddingModel
from dmlkit.training.optim import build_optimizer, build_scheduler, parameter_groups

#: What the P×K keys resolve to when a method uses the P×K source and the config leaves them out.
PK_DEFAULTS = {"classes_per_batch": 5, "samples_per_class": 8, "skip_singleton_classes": False}
#: The loss of a method that trains one when the config names none.
DEFAULT_LOSS = {"name": "triplet"}


def build_model(cfg: RunConfig, pretrained: bool | str | None = None) -> EmbeddingModel:
    """The embedding model of ``model.*`` for the training dataset's images (1 channel for gray ones;
    ``pretrained`` overrides ``model.pretrained``: a restored run takes its weights from the checkpoint)."""
    m = cfg.model
    in_channels = 1 if get_dataset_spec(cfg.data.dataset).mode == "L" else 3
    return build_embedding_model(
        backbone=m.backbone,
        embedding_dim=m.embedding_dim,
        pretrained=m.pretrained if pretrained is None else pretrained,
        pooling=m.pooling,
        normalize=m.normalize,
        freeze_bn=m.freeze_bn,
        in_channels=in_channels,
        head_init=m.head_init,
        backbone_kwargs=m.backbone_kwargs,
        head_dropout=m.head_dropout,
    )


def run_facts(
    cfg: RunConfig,
    feature_dim: int,
    embedding_dim: int,
    num_classes: int,
    class_names,
    num_examples: int,
    world_size: int = 1,
) -> RunFacts:
    """The :class:`RunFacts` of ``cfg`` with the model's sizes, the training set's counts and the
    number of processes."""
    spec = get_dataset_spec(cfg.data.dataset)
    supervised = method_uses_labels(cfg)
    return RunFacts(
        dataset=spec.name,
        mode=spec.mode,
        image_size=image_size(cfg, spec),
        feature_dim=int(feature_dim),
        embedding_dim=int(embedding_dim),
        supervised=supervised,
        num_classes=int(num_classes) if supervised else 0,
        class_names=tuple(class_names) if supervised else (),
        num_examples=int(num_examples),
        query_gallery="query" in spec.splits,
        epochs=cfg.trainer.epochs,
        eval_every=cfg.trainer.eval_every,
        seed=cfg.seed,
        world_size=int(world_size),
        batch_shards=int(world_size) if cfg.trainer.distributed_batch == "global" else 1,
    )


def method_takes_loss(cfg: RunConfig) -> bool:
    """Whether the configured method trains the run's ``loss`` section (its constructor takes ``loss``)."""
    return "loss" in METHODS.accepts(cfg.method["name"])


def method_uses_labels(cfg: RunConfig) -> bool:
    """Whether the configured method reads training labels."""
    return bool(getattr(METHODS.get(cfg.method["name"], key="method.name"), "uses_labels", True))


def _loss(cfg: RunConfig, facts: RunFacts) -> MetricLoss | None:
    """The ``loss`` section, built; checked against the method's need for one."""
    name = cfg.method["name"]
    if not method_takes_loss(cfg):
        if cfg.loss is not None:
            raise ConfigError(
                f"config section 'loss' ({cfg.loss.get('name')!r}): method {name!r} has a loss of its own and does "
                "not use this section; remove it (or set loss: null over an inherited one)"
            )
        return None
    if cfg.loss is None:
        raise ConfigError(
            f"config section 'loss': method {name!r} trains a metric loss; name one, e.g. loss: {{name: triplet}} "
            f"(losses: {', '.join(LOSSES.names())})"
        )
    params = {k: v for k, v in cfg.loss.items() if k != "name"}
    try:
        return build_loss(cfg.loss["name"], params, embedding_dim=facts.embedding_dim, num_classes=facts.num_classes)
    except NeedsClassesError as exc:
        if facts.supervised:
            raise
        raise ConfigError(
            f"config key 'loss.name': method {name!r} reads no training label, so loss {cfg.loss['name']!r}, which "
            "has parameters per class, cannot be trained; use a pair or triplet loss"
        ) from exc


def build_method(cfg: RunConfig, facts: RunFacts, model: EmbeddingModel) -> Method:
    """The method of ``method.*`` with what it asks for: the loss, the model and the run's facts."""
    name = cfg.method["name"]
    METHODS.get(name, key="method.name")
    params = {k: v for k, v in cfg.method.items() if k != "name"}
    method = METHODS.build(name, params, key="method", loss=_loss(cfg, facts), model=model, **facts.injectable())
    if not facts.supervised and method.batch_source is None:
        raise ConfigError(
            f"method {name!r} reads no training label, so it must draw its own batches (Method.batch_source); "
            "the P×K sampler needs labels"
        )
    return method


def uses_pk_batches(method: Method) -> bool:
    """Whether ``method`` trains on the P×K source (it sets no batch source of its own)."""
    return method.batch_source is None


def batch_source(cfg: RunConfig, method: Method, train: DMLDataset, facts: RunFacts) -> BatchSource:
    """The method's own batches, or P×K batches over the training labels (``data.*`` P×K keys)."""
    if not uses_pk_batches(method):
        return method.batch_source  # type: ignore[return-value]
    d = cfg.data
    return PKBatches(
        train.labels,
        classes_per_batch=d.classes_per_batch,
        samples_per_class=d.samples_per_class,
        seed=facts.seed,
        skip_singletons=bool(d.skip_singleton_classes),
        class_names=facts.class_names,
        shards=facts.batch_shards,  # the global batch of all processes
    )


def build_optimization(
    cfg: RunConfig, model: EmbeddingModel, method: Method, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, Any]:
    """The optimiser over model and method parameter groups, and the per-step LR schedule."""
    optimizer = build_optimizer(cfg.optimizer, parameter_groups(cfg.optimizer, model, method))
    return optimizer, build_scheduler(cfg.scheduler, optimizer, steps_per_epoch, cfg.trainer.epochs)
