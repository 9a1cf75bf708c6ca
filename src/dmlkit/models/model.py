"""The embedding model: backbone + embedding head, with seams for the seed methods."""

from __future__ import annotations

import torch
from torch import nn

from dmlkit.models.frozen_bn import freeze_batchnorm
from dmlkit.models.heads import EmbeddingHead


class EmbeddingModel(nn.Module):
    """``images -> backbone -> pool -> linear -> (L2 normalise)``.

    Methods that need more than the final embedding use the steps separately:
    :meth:`features` (pooled backbone features; DVML's reconstruction target),
    :meth:`project` (unnormalised embedding; Intra-batch's classifier input) and
    :meth:`finish` (normalisation).

    Attributes:
        feature_dim: Size of the pooled backbone features.
        embedding_dim: Size of the embedding.
    """

    def __init__(self, backbone: nn.Module, head: EmbeddingHead, freeze_bn: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.freeze_bn = freeze_bn
        self.feature_dim = int(backbone.feature_dim)
        self.embedding_dim = head.embedding_dim
        if freeze_bn:
            freeze_batchnorm(self.backbone)

    def train(self, mode: bool = True) -> EmbeddingModel:
        super().train(mode)
        if self.freeze_bn:
            freeze_batchnorm(self.backbone)
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.head.pool(self.backbone(images))

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return self.head.project(features)

    def finish(self, projected: torch.Tensor) -> torch.Tensor:
        return self.head.finish(projected)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        return self.finish(self.project(features))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed(self.features(images))
