"""Optimisers with per-group learning rates, and per-step LR schedules."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch.optim.lr_scheduler import LambdaLR

from dmlkit.config.schema import OptimizerConfig, SchedulerConfig
from dmlkit.errors import ConfigError
from dmlkit.methods.base import Method

if TYPE_CHECKING:
    from dmlkit.models.model import EmbeddingModel


def parameter_groups(cfg: OptimizerConfig, model: EmbeddingModel, method: Method) -> list[dict[str, Any]]:
    """Backbone, head and method groups with their LR multipliers (empty groups dropped)."""
    backbone = [p for p in model.backbone.parameters() if p.requires_grad]
    seen = {id(p) for p in backbone}
    head = [p for p in model.parameters() if p.requires_grad and id(p) not in seen]
    groups = [
        {"params": backbone, "lr": cfg.lr * cfg.backbone_lr_mult, "name": "backbone"},
        {"params": head, "lr": cfg.lr * cfg.head_lr_mult, "name": "head"},
        *method.param_groups(cfg.lr, cfg.method_lr_mult),
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(cfg: OptimizerConfig, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """Adam, AdamW, RAdam or SGD over ``groups`` (weight decay applies to every group)."""
    if len(cfg.betas) != 2:
        raise ConfigError(f"config key 'optimizer.betas': expected two numbers, got {cfg.betas}")
    common: dict[str, Any] = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    betas = (float(cfg.betas[0]), float(cfg.betas[1]))
    if cfg.name == "adam":
        return torch.optim.Adam(groups, betas=betas, **common)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, betas=betas, **common)
    if cfg.name == "radam":
        return torch.optim.RAdam(groups, betas=betas, **common)
    return torch.optim.SGD(groups, momentum=cfg.momentum, nesterov=cfg.nesterov, **common)


def lr_factor(cfg: SchedulerConfig, step: int, steps_per_epoch: int, epochs: int) -> float:
    """The LR multiplier at optimisation step ``step`` (0-based)."""
    epoch = step / max(steps_per_epoch, 1)
    warmup = cfg.warmup_epochs
    if warmup > 0 and epoch < warmup:
        return cfg.warmup_start + (1.0 - cfg.warmup_start) * epoch / warmup
    if cfg.name == "cosine":
        span = max(epochs - warmup, 1e-12)
        progress = min(max((epoch - warmup) / span, 0.0), 1.0)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if cfg.name == "step":
        return cfg.gamma ** int(epoch // cfg.step_epochs)
    if cfg.name == "multistep":
        return cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    return 1.0


def build_scheduler(
    cfg: SchedulerConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int, epochs: int
) -> LambdaLR:
    """A per-step :class:`LambdaLR` following :func:`lr_factor`."""
    if cfg.name == "step" and cfg.step_epochs < 1:
        raise ConfigError(f"config key 'scheduler.step_epochs': must be >= 1, got {cfg.step_epochs}")
    if cfg.warmup_epochs < 0:
        raise ConfigError(f"config key 'scheduler.warmup_epochs': must be >= 0, got {cfg.warmup_epochs}")
    return LambdaLR(optimizer, lambda step: lr_factor(cfg, step, steps_per_epoch, epochs))
