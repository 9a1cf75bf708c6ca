"""Checking a config before anything is created: a dry build of the whole run on shapes only.

:func:`check_config` builds every component of a run the way the run will (:mod:`.components`),
on PyTorch's ``meta`` device, where tensors have shapes and no storage: the model head, the loss,
the method, the optimiser and the LR schedule, plus the dataset's transforms and the ``trainer``
values. A typo or a bad value in any section is a :class:`~dmlkit.errors.ConfigError` naming the
key before a dataset is read, a weight loaded, a process launched or a run directory created.

Facts that need the data (class and image counts) are placeholders here; the checks that depend
on them run when the run is assembled, still before its directory is created. (A few
pytorch-metric-learning losses create their proxies with the legacy ``torch.Tensor`` constructor,
which ignores the meta device: with the placeholder class count they take a few megabytes.)

It also resolves what the config leaves to be derived, so that the run's ``config.yaml`` records
what was used: the image size, the loss of a method that trains one (``triplet`` when the config
names none), and the P×K keys of a method that trains on P×K batches. A method with a loss of its
own rejects a ``loss`` section, and a method with its own batches rejects the P×K keys, rather
than recording settings it ignores.
"""

from __future__ import annotations

import dataclasses

import torch

from dmlkit.assembly.components import (
    DEFAULT_LOSS,
    PK_DEFAULTS,
    build_method,
    build_model,
    build_optimization,
    method_takes_loss,
    run_facts,
    uses_pk_batches,
)
from dmlkit.assembly.data import transform
from dmlkit.assembly.devices import check_trainer
from dmlkit.config import RunConfig
from dmlkit.data.registry import get_dataset_spec
from dmlkit.errors import ConfigError
from dmlkit.methods import Method
from dmlkit.models.pretrained import check_pretrained

#: Placeholder data facts of the dry build: large enough not to trip a size check meant for the real
#: data, small enough that a per-example array allocated in a constructor costs a few megabytes.
DRY_NUM_CLASSES = 1000
DRY_NUM_EXAMPLES = 10**6


def _resolve_batches(cfg: RunConfig, method: Method) -> RunConfig:
    """Fill the P×K keys of a P×K method; refuse them for a method with its own batches."""
    d = cfg.data
    if uses_pk_batches(method):
        filled = {k: v if getattr(d, k) is None else getattr(d, k) for k, v in PK_DEFAULTS.items()}
        return dataclasses.replace(cfg, data=dataclasses.replace(d, **filled))
    given = [f"data.{k}" for k in PK_DEFAULTS if getattr(d, k) is not None]
    if given:
        raise ConfigError(
            f"config key(s) {', '.join(given)}: method {cfg.method['name']!r} draws its own batches (see its "
            "method.* keys) and does not use the P×K sampler; remove them (or set them to null over inherited values)"
        )
    return cfg


def _resolve_dataset(cfg: RunConfig) -> RunConfig:
    """``data.dataset`` unset: the bundled digits, unless a root says there is data of an unnamed layout."""
    d = cfg.data
    if len(d.background) != 3 or any(not 0 <= c <= 255 for c in d.background):
        raise ConfigError(f"config key 'data.background': expected three numbers 0-255 (RGB), got {d.background}")
    if d.dataset is not None:
        if d.root is not None and get_dataset_spec(d.dataset).bundled:
            raise ConfigError(
                f"config key 'data.root': {d.root} is given, but data.dataset {d.dataset!r} is bundled with a library "
                "and reads no files; set data.dataset to the layout of the data there (folder, csv, cub200, ...)"
            )
        return cfg
    if d.root is not None:
        raise ConfigError(
            f"config key 'data.dataset': not set, but data.root is ({d.root}); name the layout of the data there "
            "(folder, csv, cub200, ...; 'dmlkit datasets' lists them)"
        )
    return dataclasses.replace(cfg, data=dataclasses.replace(d, dataset="digits"))


def _check_best_metric(cfg: RunConfig, method: Method) -> None:
    """``eval.best_metric`` must be a metric the run computes (retrieval keys, or the method's own)."""
    e = cfg.eval
    known = {f"recall@{k}" for k in e.recall_at} if "recall" in e.metrics else set()
    known |= {m for m in e.metrics if m != "recall"} | method.metric_names()
    if e.best_metric not in known:
        raise ConfigError(
            f"config key 'eval.best_metric': {e.best_metric!r} is not computed by this run; valid choices: "
            f"{', '.join(sorted(known))}"
        )


def check_config(cfg: RunConfig) -> RunConfig:
    """Dry-build ``cfg`` (see the module docstring) and return it resolved.

    Raises:
        ConfigError: Any invalid key or value, naming it and what was expected.
    """
    cfg = _resolve_dataset(cfg)
    if cfg.loss is None and method_takes_loss(cfg):
        cfg = dataclasses.replace(cfg, loss=dict(DEFAULT_LOSS))
    check_trainer(cfg.trainer)
    if cfg.trainer.sync_batchnorm and cfg.model.freeze_bn:
        raise ConfigError(
            "config key 'trainer.sync_batchnorm': model.freeze_bn is true, so BatchNorm uses its running "
            "statistics and there is nothing to synchronise; set one of them to false"
        )
    check_pretrained(cfg.model.pretrained)
    with torch.device("meta"):
        model = build_model(cfg, pretrained=False)
        facts = run_facts(
            cfg,
            model.feature_dim,
            model.embedding_dim,
            DRY_NUM_CLASSES,
            [str(c) for c in range(DRY_NUM_CLASSES)],
            DRY_NUM_EXAMPLES,
        )
        for kind in ("train", "eval"):
            transform(cfg, kind)
        method = build_method(cfg, facts, model)
        build_optimization(cfg, model, method, steps_per_epoch=1)
    _check_best_metric(cfg, method)
    resolved = _resolve_batches(cfg, method)
    return dataclasses.replace(resolved, data=dataclasses.replace(resolved.data, image_size=facts.image_size))
