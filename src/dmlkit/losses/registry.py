"""Losses and miners by name (``loss.name`` / ``loss.miner.name`` in a config)."""

from __future__ import annotations

from dmlkit.losses.base import MetricLoss
from dmlkit.registry import Registry

LOSSES: Registry[MetricLoss] = Registry("loss")
MINERS: Registry = Registry("miner")
