"""Losses and miners by name (``loss.name`` / ``loss.miner.name`` in a config)."""

from __future__ import annotations

from pytorch_metric_learning.miners import BaseMiner

from dmlkit.losses.base import MetricLoss
from dmlkit.registry import Registry

LOSSES: Registry[MetricLoss] = Registry("loss", injected=("embedding_dim", "num_classes"))
"""Every metric loss by name; factories receive ``embedding_dim``/``num_classes`` if they ask for them."""

MINERS: Registry[BaseMiner] = Registry("miner")
"""PML miners by name, for ``loss.miner: {name: ..., ...}``."""
