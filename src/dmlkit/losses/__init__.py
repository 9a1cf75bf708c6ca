"""Metric losses and miners, selected by name (see :data:`LOSSES` and :data:`MINERS`)."""

from __future__ import annotations

from typing import Any

from dmlkit.errors import ConfigError
from dmlkit.losses import contrastive, miners, npair, proxy, triplet  # noqa: F401  (registration)
from dmlkit.losses.base import MetricLoss
from dmlkit.losses.pml import PMLLoss
from dmlkit.losses.registry import LOSSES, MINERS


def build_loss(
    name: str, params: dict[str, Any] | None = None, embedding_dim: int = 0, num_classes: int = 0
) -> MetricLoss:
    """Loss ``name`` with user ``params``; ``params["miner"] = {name: ..., ...}`` replaces its miner.

    Raises:
        ConfigError: unknown loss, miner or parameter (naming the ``loss.*`` key).
    """
    params = dict(params or {})
    miner_cfg = params.pop("miner", None)
    loss = LOSSES.build(name, params, key="loss", embedding_dim=embedding_dim, num_classes=num_classes)
    if miner_cfg is not None:
        if not isinstance(miner_cfg, dict) or not isinstance(miner_cfg.get("name"), str):
            raise ConfigError(
                "config key 'loss.miner': expected {name: <miner>, ...}; miners: " + ", ".join(MINERS.names())
            )
        if not isinstance(loss, PMLLoss) or getattr(loss.loss, "num_classes", None) is not None:
            raise ConfigError(f"config key 'loss.miner': loss {name!r} does not take a miner")
        mparams = {k: v for k, v in miner_cfg.items() if k != "name"}
        loss.miner = MINERS.build(miner_cfg["name"], mparams, key="loss.miner")
    return loss


__all__ = ["LOSSES", "MINERS", "MetricLoss", "build_loss"]
