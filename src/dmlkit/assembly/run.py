"""Assembling a training run: from a checked config, everything the loop needs, built once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.fabric import Fabric

from dmlkit.assembly.components import (
    batch_source,
    build_method,
    build_model,
    build_optimization,
    method_uses_labels,
    run_facts,
)
from dmlkit.assembly.data import TrainingSets, build_eval_split, build_training_sets
from dmlkit.assembly.embedding import FabricEmbedder
from dmlkit.config import RunConfig
from dmlkit.data.base import EvalSplit
from dmlkit.data.samplers import EpochBatchSampler
from dmlkit.distributed import BatchGather
from dmlkit.errors import ConfigError
from dmlkit.evaluation.evaluator import Evaluator
from dmlkit.facts import RunFacts
from dmlkit.methods import Method, MethodRuntime
from dmlkit.models.model import EmbeddingModel


@dataclass
class RunAssembly:
    """Everything a training run needs besides its loop.

    Attributes:
        cfg: The resolved config (what ``config.yaml`` records).
        facts: The run's facts (stored in every checkpoint).
        data: The training sets (train and eval transform).
        test: The test side.
        model: The embedding model (weights loaded when ``model.pretrained`` asks for them).
        method: The method, bound to the run's services.
        sampler: This rank's training batches.
        optimizer: Optimiser over the model's and the method's parameter groups.
        scheduler: The per-step LR schedule.
        embedder: Embeds whole datasets through the run's Fabric.
        evaluator: The evaluation of every epoch and of the final model.
    """

    cfg: RunConfig
    facts: RunFacts
    data: TrainingSets
    test: EvalSplit
    model: EmbeddingModel
    method: Method
    sampler: EpochBatchSampler
    optimizer: torch.optim.Optimizer
    scheduler: Any
    embedder: FabricEmbedder
    evaluator: Evaluator


def bind(method: Method, runtime: MethodRuntime) -> None:
    """:meth:`Method.bind`, checked to create no parameter or buffer (those belong in the constructor)."""
    before = set(method.state_dict())
    method.bind(runtime)
    added = sorted(set(method.state_dict()) - before)
    if added:
        raise RuntimeError(
            f"{type(method).__name__}.bind created {', '.join(added[:5])}: a method creates every parameter and "
            "buffer in its constructor, so that a run can be restored from its config"
        )


def assemble(cfg: RunConfig, fabric: Fabric, plots_dir: Path | None = None) -> RunAssembly:
    """Build the run of ``cfg`` (checked and resolved by :func:`~dmlkit.assembly.check_config`).

    Args:
        cfg: The resolved config.
        fabric: The run's Fabric (launched): its device, precision and ranks.
        plots_dir: Where the method writes figures (``RUN_DIR/plots``); used on rank 0 only.
    """
    supervised = method_uses_labels(cfg)
    # The data first: a missing dataset is reported before a backbone's weights are loaded.
    data = build_training_sets(cfg, hide_labels=not supervised)
    test = build_eval_split(cfg)
    model = build_model(cfg)
    raw = data.train
    facts = run_facts(
        cfg,
        model.feature_dim,
        model.embedding_dim,
        raw.num_classes if supervised else 0,
        raw.class_names if supervised else (),
        len(raw),
        fabric.world_size,
    )
    method = build_method(cfg, facts, model)
    gather = BatchGather(fabric.global_rank, fabric.world_size, cfg.trainer.distributed_batch)
    sampler = EpochBatchSampler(
        batch_source(cfg, method, data.train, facts),
        fabric.global_rank,
        fabric.world_size,
        cfg.trainer.max_steps_per_epoch,
        seed=cfg.seed,
        shard=gather.active,
    )
    if len(sampler) < 1:
        raise ConfigError(
            f"the training batches of {cfg.data.dataset!r} give no batch per epoch to each of {fabric.world_size} "
            "process(es): lower the batch size (data.classes_per_batch/samples_per_class or the method's batch keys)"
        )
    optimizer, scheduler = build_optimization(cfg, model, method, len(sampler))
    embedder = FabricEmbedder(fabric, model, method, cfg.data.eval_batch_size, cfg.data.num_workers)
    bind(
        method,
        MethodRuntime(
            embed_training_set=lambda embed=None: embedder(data.train_eval, embed),
            plots_dir=plots_dir if fabric.is_global_zero else None,
            gather=gather,
        ),
    )
    evaluator = Evaluator(test, cfg.eval, cfg.seed, embedder, method.eval_metrics)
    return RunAssembly(cfg, facts, data, test, model, method, sampler, optimizer, scheduler, embedder, evaluator)
