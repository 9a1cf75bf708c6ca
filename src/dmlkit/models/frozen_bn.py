"""Frozen BatchNorm: running statistics and affine parameters fixed during training.

Freezing the backbone's BatchNorm layers is the common DML protocol for ImageNet-pretrained
backbones with small P×K batches (Roth et al. 2020, "Revisiting Training Strategies and
Generalization Performance in Deep Metric Learning"): the statistics of a 2-images-per-class
batch are a poor estimate of the population's, and the protocol must be recorded with the run.

The layers stay frozen through ``module.train()``: a forward pre-hook puts each frozen layer back
in eval mode before it runs, so its running statistics are never updated, whoever calls
``train()``. :class:`~dmlkit.models.model.EmbeddingModel` also re-applies eval mode in its
``train()`` so that ``layer.training`` reads ``False`` right away.
"""

from __future__ import annotations

from typing import Any

from torch import nn

_FROZEN_ATTR = "_dmlkit_frozen_bn"


def batchnorm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm layer (1d/2d/3d, SyncBatchNorm, timm's BatchNormAct) in ``module``."""
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _stay_in_eval(layer: nn.Module, args: Any) -> None:
    if layer.training:
        layer.train(False)


def freeze_batchnorm(module: nn.Module, affine: bool = True) -> list[nn.modules.batchnorm._BatchNorm]:
    """Freeze every BatchNorm layer of ``module`` in place; idempotent.

    Args:
        module: Any module (usually a backbone).
        affine: Also stop training the layers' scale and shift (``requires_grad=False``; default
            ``True``, the Roth et al. protocol). The optimiser should then skip them (the trainer
            only optimises parameters with ``requires_grad``).

    Returns:
        The frozen layers.
    """
    layers = batchnorm_layers(module)
    for bn in layers:
        bn.train(False)
        if not getattr(bn, _FROZEN_ATTR, False):
            bn.register_forward_pre_hook(_stay_in_eval)
            setattr(bn, _FROZEN_ATTR, True)
        if affine:
            for p in bn.parameters(recurse=False):
                p.requires_grad_(False)
    return layers


def is_frozen(layer: nn.Module) -> bool:
    """Whether :func:`freeze_batchnorm` froze ``layer``."""
    return bool(getattr(layer, _FROZEN_ATTR, False))


def keep_frozen_in_eval(module: nn.Module) -> None:
    """Put the frozen BatchNorm layers of ``module`` back in eval mode (after ``module.train()``)."""
    for bn in batchnorm_layers(module):
        if is_frozen(bn):
            bn.train(False)
