"""Frozen BatchNorm: running statistics and affine parameters fixed (Roth et al. 2020 protocol)."""

from __future__ import annotations

from torch import nn


def batchnorm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def freeze_batchnorm(module: nn.Module) -> None:
    """Put every BatchNorm layer of ``module`` in eval mode and stop training its affine parameters.

    Call again after ``module.train()`` (``EmbeddingModel.train`` does this itself).
    """
    for bn in batchnorm_layers(module):
        bn.eval()
        for p in bn.parameters():
            p.requires_grad_(False)
