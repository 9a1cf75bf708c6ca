"""Backbones, embedding heads and the embedding model."""

from __future__ import annotations

from typing import Any

from dmlkit.models.backbones import BACKBONES, build_backbone
from dmlkit.models.heads import EmbeddingHead
from dmlkit.models.model import EmbeddingModel


def build_model(
    backbone: str,
    embedding_dim: int,
    pretrained: bool | str = False,
    pooling: str = "avg",
    normalize: bool = True,
    freeze_bn: bool = False,
    in_channels: int = 3,
    head_init: str = "default",
    backbone_kwargs: dict[str, Any] | None = None,
) -> EmbeddingModel:
    """Backbone ``backbone`` (a :data:`BACKBONES` name or ``timm:<model>``) with an embedding head.

    Raises:
        ConfigError: unknown backbone, pooling or init (naming the ``model.*`` key).
        WeightsError: weights asked for but not available (never a silent random init).
    """
    net = build_backbone(backbone, pretrained, in_channels, dict(backbone_kwargs or {}))
    head = EmbeddingHead(net.feature_dim, embedding_dim, pooling, normalize, head_init)
    return EmbeddingModel(net, head, freeze_bn)


__all__ = ["BACKBONES", "EmbeddingHead", "EmbeddingModel", "build_model"]
