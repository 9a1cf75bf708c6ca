"""Metric losses and miners, selected by name (see :data:`LOSSES` and :data:`MINERS`).

Every loss follows :class:`~dmlkit.losses.base.MetricLoss`: ``loss(embeddings, labels,
ref_emb=None, ref_labels=None)`` returns a scalar. Where each one lives:

==================  ====================  =====================================================
name                module                implementation
==================  ====================  =====================================================
contrastive         ``contrastive``       PML ContrastiveLoss with squared hinges
triplet             ``triplet``           PML TripletMarginLoss + semi-hard / batch-hard miner
triplet2_dws        ``triplet``           PML TripletMarginLoss + DistanceWeightedMiner
margin              ``triplet``           PML MarginLoss + DistanceWeightedMiner
npair               ``npair``             PML NPairsLoss + LpRegularizer
angular             ``npair``             PML AngularLoss
lifted              ``lifted``            PML LiftedStructureLoss
multi_similarity    ``multi_similarity``  PML MultiSimilarityLoss + MultiSimilarityMiner
proxy_nca           ``proxy``             own (the paper's denominator)
proxy_anchor        ``proxy``             PML ProxyAnchorLoss
normalized_softmax  ``proxy``             PML NormalizedSoftmaxLoss
soft_triple         ``soft_triple``       PML SoftTripleLoss + own per-class regulariser
magnet              ``magnet``            own (unimodal magnet loss, one cluster per batch class)
==================  ====================  =====================================================

``miners`` holds the miners, ``pml`` the adapter to pytorch-metric-learning and ``validate``
the parameter checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dmlkit.errors import ConfigError
from dmlkit.losses import (  # noqa: F401  (registration)
    contrastive,
    lifted,
    magnet,
    miners,
    multi_similarity,
    npair,
    proxy,
    soft_triple,
    triplet,
)
from dmlkit.losses.base import MetricLoss
from dmlkit.losses.pml import PMLLoss
from dmlkit.losses.registry import LOSSES, MINERS


def build_loss(
    name: str, params: Mapping[str, Any] | None = None, embedding_dim: int = 0, num_classes: int = 0
) -> MetricLoss:
    """Loss ``name`` built with the user's ``params`` (the config's ``loss`` section without ``name``).

    ``embedding_dim`` and ``num_classes`` are passed to the losses that need them (proxies,
    per-class β). ``params["miner"] = {"name": <miner>, ...}`` replaces the loss's own sampling by a
    miner from :data:`MINERS` (pair and triplet losses only; not together with ``mining``); miner
    parameters it leaves out that the loss also has (``margin``, ``squared``, ``normalize``) are
    taken from the loss.

    Raises:
        ConfigError: Unknown loss, miner or parameter, or an invalid value (naming the ``loss.*`` key).

    Example:
        >>> import torch
        >>> loss = build_loss("triplet", {"margin": 0.2, "miner": {"name": "batch_hard"}})
        >>> labels = torch.arange(4).repeat_interleave(2)
        >>> loss(torch.randn(8, 16), labels).shape
        torch.Size([])
    """
    params = dict(params or {})
    miner_cfg = params.pop("miner", None)
    loss = LOSSES.build(name, params, key="loss", embedding_dim=embedding_dim, num_classes=num_classes)
    if miner_cfg is not None:
        _attach_miner(loss, name, miner_cfg, set_mining="mining" in params)
    return loss


def _attach_miner(loss: MetricLoss, name: str, miner_cfg: object, set_mining: bool) -> None:
    if not isinstance(miner_cfg, Mapping) or not isinstance(miner_cfg.get("name"), str):
        raise ConfigError(
            "config key 'loss.miner': expected a mapping {name: <miner>, ...}; miners: " + ", ".join(MINERS.names())
        )
    if not isinstance(loss, PMLLoss) or not loss.takes_miner:
        raise ConfigError(f"config key 'loss.miner': loss {name!r} does not take a miner")
    if set_mining:
        raise ConfigError("config keys 'loss.mining' and 'loss.miner': set one of them, not both")
    miner_params = {k: v for k, v in miner_cfg.items() if k != "name"}
    loss.miner = MINERS.build(miner_cfg["name"], miner_params, key="loss.miner", **loss.miner_context)


__all__ = ["LOSSES", "MINERS", "MetricLoss", "build_loss"]
