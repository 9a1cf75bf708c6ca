"""Backbones by name: images -> feature map (no pooling, no classifier).

* ``resnet50`` — torchvision ResNet-50 (2048 channels; Intra-batch, Proxy-Anchor, MS...).
* ``googlenet`` — torchvision GoogLeNet / Inception-v1 (1024; DVML, PL-Manifolds). torchvision's
  port has BatchNorm after every convolution (the original Caffe model has none).
* ``bn_inception`` — BN-Inception (Ioffe & Szegedy 2015) is in neither torchvision nor timm; the
  closest available with ImageNet weights is torchvision's GoogLeNet with BatchNorm, so this name
  builds that model (same 1024-d features) — a documented substitution, not the Caffe model.
* ``small_cnn`` — :class:`~dmlkit.models.small_cnn.SmallCNN` for small images.
* ``timm:<name>`` — any timm model through ``forward_features`` (maps or tokens).

With torchvision weights, GoogLeNet's ``transform_input`` is on (its ported weights expect
that re-normalisation of ImageNet-normalised inputs); with random init it is off.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from dmlkit.errors import ConfigError, WeightsError
from dmlkit.models.pretrained import download_failed, load_local_weights, offline
from dmlkit.models.small_cnn import SmallCNN
from dmlkit.registry import Registry

Pretrained = bool | str

BACKBONES: Registry[nn.Module] = Registry("backbone")


class GrayToRGB(nn.Module):
    """Repeat a single channel three times, so 3-channel (pretrained) backbones take gray images."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.feature_dim = inner.feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x)


def _torchvision(builder: Callable[..., nn.Module], weights_enum, name: str, pretrained: Pretrained, **kw):
    if pretrained is True:
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        weights = weights_enum.IMAGENET1K_V1
        if not (cache / weights.url.rsplit("/", 1)[-1]).is_file() and offline():
            raise download_failed(name, RuntimeError("offline (HF_HUB_OFFLINE/DMLKIT_OFFLINE set)"), cache)
        try:
            return builder(weights=weights, **kw)
        except Exception as exc:  # URLError, socket errors, hash mismatch
            raise download_failed(name, exc, cache) from exc
    net = builder(weights=None, **kw)
    if isinstance(pretrained, str):
        load_local_weights(net, pretrained)
    return net


class ResNetFeatures(nn.Module):
    """torchvision ResNet up to ``layer4``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        net.fc = nn.Identity()
        self.net = net
        self.feature_dim = 2048 if net.layer4[-1].__class__.__name__ == "Bottleneck" else 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        return n.layer4(n.layer3(n.layer2(n.layer1(x))))


class GoogLeNetFeatures(nn.Module):
    """torchvision GoogLeNet up to ``inception5b`` (1024 channels)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        net.fc = nn.Identity()
        net.aux1 = net.aux2 = None
        self.net = net
        self.feature_dim = 1024

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        x = n._transform_input(x)
        x = n.maxpool1(n.conv1(x))
        x = n.maxpool2(n.conv3(n.conv2(x)))
        x = n.maxpool3(n.inception3b(n.inception3a(x)))
        x = n.inception4e(n.inception4d(n.inception4c(n.inception4b(n.inception4a(x)))))
        return n.inception5b(n.inception5a(n.maxpool4(x)))


@BACKBONES.register("resnet50")
def resnet50(pretrained: Pretrained = False) -> nn.Module:
    from torchvision.models import ResNet50_Weights
    from torchvision.models import resnet50 as build

    return ResNetFeatures(_torchvision(build, ResNet50_Weights, "resnet50", pretrained))


def _googlenet(name: str, pretrained: Pretrained) -> nn.Module:
    from torchvision.models import GoogLeNet_Weights, googlenet

    kw = {} if pretrained is True else {"aux_logits": False, "init_weights": True}
    net = _torchvision(googlenet, GoogLeNet_Weights, name, pretrained, **kw)
    net.transform_input = pretrained is not False
    return GoogLeNetFeatures(net)


@BACKBONES.register("googlenet")
def googlenet(pretrained: Pretrained = False) -> nn.Module:
    return _googlenet("googlenet", pretrained)


@BACKBONES.register("bn_inception")
def bn_inception(pretrained: Pretrained = False) -> nn.Module:
    return _googlenet("bn_inception", pretrained)


@BACKBONES.register("small_cnn")
def small_cnn(pretrained: Pretrained = False, in_channels: int = 1, width: int = 32, depth: int = 3) -> nn.Module:
    net = SmallCNN(in_channels, width, depth)
    if isinstance(pretrained, str):
        load_local_weights(net, pretrained)
    elif pretrained:
        raise WeightsError("small_cnn has no published pretrained weights: pass a file path or pretrained=false")
    return net


class TimmFeatures(nn.Module):
    """A timm model's ``forward_features``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.feature_dim = int(net.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x)


def timm_backbone(name: str, pretrained: Pretrained = False, **kwargs) -> nn.Module:
    import timm

    if not timm.is_model(name):
        raise ConfigError(f"config key 'model.backbone': timm has no model {name!r} (see timm.list_models())")
    if pretrained is True:
        try:
            net = timm.create_model(name, pretrained=True, num_classes=0, **kwargs)
        except Exception as exc:
            raise download_failed(f"timm:{name}", exc, "the Hugging Face hub cache") from exc
    else:
        net = timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
        if isinstance(pretrained, str):
            load_local_weights(net, pretrained)
    return TimmFeatures(net)


def build_backbone(name: str, pretrained: Pretrained, in_channels: int, kwargs: dict) -> nn.Module:
    """Backbone ``name`` taking ``in_channels``-channel images."""
    if name.startswith("timm:"):
        net = timm_backbone(name[5:], pretrained, **kwargs)
    elif name == "small_cnn":
        return BACKBONES.build(
            name,
            {**kwargs, "pretrained": pretrained, "in_channels": in_channels},
            key="model.backbone_kwargs",
        )
    else:
        net = BACKBONES.build(name, {**kwargs, "pretrained": pretrained}, key="model.backbone_kwargs")
    return GrayToRGB(net) if in_channels == 1 else net
