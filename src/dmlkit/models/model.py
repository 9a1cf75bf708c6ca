"""The embedding model: backbone + embedding head, with seams for the seed methods."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dmlkit.models.frozen_bn import freeze_batchnorm, keep_frozen_in_eval
from dmlkit.models.heads import EmbeddingHead


class EmbeddingModel(nn.Module):
    """``images → backbone → pool → linear → (L2-normalise)``.

    Methods that need more than the final embedding call the steps separately:

    * :meth:`features` — pooled backbone features (B, ``feature_dim``); DVML's reconstruction target.
    * :meth:`project` — unnormalised embedding (B, ``embedding_dim``); Intra-batch's classifier input.
    * :meth:`finish` — the configured normalisation of a projected embedding.
    * :meth:`embed` — ``finish(project(features))``, the final embedding from pooled features.

    ``forward(images) == embed(features(images))``.

    Args:
        backbone: Module mapping images to a feature map, with a ``feature_dim`` attribute.
        head: The :class:`EmbeddingHead`.
        freeze_bn: Freeze the backbone's BatchNorm layers (statistics and affine parameters; see
            :mod:`dmlkit.models.frozen_bn`); they stay frozen through :meth:`train`.

    Attributes:
        feature_dim: Size of the pooled backbone features.
        embedding_dim: Size of the embedding (``feature_dim`` when the head has no linear layer).
        spec: The resolved settings this model was built with (for the run record), set by
            :func:`dmlkit.models.build_model`.
    """

    def __init__(self, backbone: nn.Module, head: EmbeddingHead, freeze_bn: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.freeze_bn = bool(freeze_bn)
        self.feature_dim = int(backbone.feature_dim)
        self.embedding_dim = int(head.embedding_dim)
        self.spec: dict[str, Any] = {}
        if self.freeze_bn:
            freeze_batchnorm(self.backbone)

    def train(self, mode: bool = True) -> EmbeddingModel:
        """Set training mode; frozen BatchNorm layers stay in eval mode."""
        super().train(mode)
        if self.freeze_bn:
            keep_frozen_in_eval(self.backbone)
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Images → pooled backbone features (B, ``feature_dim``)."""
        return self.head.pool(self.backbone(images))

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """Pooled features → unnormalised embedding (B, ``embedding_dim``)."""
        return self.head.project(features)

    def finish(self, projected: torch.Tensor) -> torch.Tensor:
        """The head's final normalisation (L2 if ``normalize``, else the identity)."""
        return self.head.finish(projected)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Pooled features → final embedding (normalised if configured)."""
        return self.finish(self.project(features))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images → final embedding; equals ``embed(features(images))``."""
        return self.embed(self.features(images))
