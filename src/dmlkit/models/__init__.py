"""Backbones, embedding heads and the embedding model.

Example:
    >>> import torch
    >>> model = build_model("small_cnn", embedding_dim=16, in_channels=1).eval()
    >>> x = torch.zeros(2, 1, 8, 8)
    >>> model(x).shape, model.features(x).shape
    (torch.Size([2, 16]), torch.Size([2, 128]))
"""

from __future__ import annotations

from typing import Any

from dmlkit.errors import ConfigError
from dmlkit.models.backbones import BACKBONES, backbone_names, build_backbone
from dmlkit.models.frozen_bn import freeze_batchnorm
from dmlkit.models.heads import INITS, POOLINGS, EmbeddingHead, check_head_options, pool
from dmlkit.models.model import EmbeddingModel
from dmlkit.models.pretrained import LoadReport, load_weights_file


def _check_bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"config key '{key}': expected true or false, got {value!r}")
    return value


def build_model(
    backbone: str,
    embedding_dim: int | None,
    pretrained: bool | str = False,
    pooling: str = "avg",
    normalize: bool = True,
    freeze_bn: bool = False,
    in_channels: int = 3,
    head_init: str = "default",
    backbone_kwargs: dict[str, Any] | None = None,
    head_dropout: float = 0.0,
) -> EmbeddingModel:
    """Backbone ``backbone`` with an embedding head (the ``model`` section of a run config).

    Args:
        backbone: A :data:`BACKBONES` name (``resnet50``, ``googlenet``, ``bn_inception``,
            ``small_cnn``) or ``timm:<model_name>``; see :mod:`dmlkit.models.backbones`.
        embedding_dim: Embedding size; ``0``/``None``: no linear layer (the pooled feature).
        pretrained: ``False`` (default), ``True`` (the library's ImageNet weights) or a weights file;
            see :mod:`dmlkit.models.pretrained`.
        pooling: ``avg`` (default), ``max`` (Intra-batch) or ``avgmax`` (avg + max summed; STML,
            PL-Manifolds).
        normalize: L2-normalise the final embedding (default ``True``).
        freeze_bn: Freeze the backbone's BatchNorm (default ``False``).
        in_channels: Image channels: 1 (gray; repeated for 3-channel backbones) or 3.
        head_init: ``default``, ``orthogonal`` (PL-Manifolds), ``kaiming`` or ``xavier``.
        backbone_kwargs: Extra arguments of the backbone factory (e.g. ``width`` of ``small_cnn``,
            ``transform_input`` of ``googlenet``, any ``timm.create_model`` argument).
        head_dropout: Dropout before the linear layer (default 0).

    Raises:
        ConfigError: unknown backbone, pooling, init or kwargs; the message names the ``model.*`` key.
        WeightsError: weights asked for but not available (never a silent random init).
    """
    if backbone_kwargs is not None and not isinstance(backbone_kwargs, dict):
        raise ConfigError(f"config key 'model.backbone_kwargs': expected a mapping, got {backbone_kwargs!r}")
    normalize = _check_bool(normalize, "model.normalize")
    freeze_bn = _check_bool(freeze_bn, "model.freeze_bn")
    # Validate the cheap head settings before building a (possibly large) backbone.
    check_head_options(embedding_dim, pooling, head_init, head_dropout)
    net = build_backbone(backbone, pretrained, in_channels, backbone_kwargs)
    head = EmbeddingHead(net.feature_dim, embedding_dim, pooling, normalize, head_init, head_dropout)
    model = EmbeddingModel(net, head, freeze_bn)
    model.spec = {
        "backbone": backbone,
        "backbone_kwargs": dict(backbone_kwargs or {}),
        "pretrained": pretrained,
        "weights": getattr(net, "weights", "random"),
        "note": getattr(net, "note", ""),
        "input_mean": list(getattr(net, "input_mean", ())),
        "input_std": list(getattr(net, "input_std", ())),
        "in_channels": in_channels,
        "feature_dim": model.feature_dim,
        "embedding_dim": model.embedding_dim,
        "pooling": pooling,
        "normalize": normalize,
        "freeze_bn": freeze_bn,
        "head_init": head_init,
        "head_dropout": head_dropout,
    }
    return model


__all__ = [
    "BACKBONES",
    "INITS",
    "POOLINGS",
    "EmbeddingHead",
    "EmbeddingModel",
    "LoadReport",
    "backbone_names",
    "build_backbone",
    "build_model",
    "freeze_batchnorm",
    "load_weights_file",
    "pool",
]
