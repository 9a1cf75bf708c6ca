"""Backbones by name: images → feature map (B, C, H, W), without pooling or classifier.

Every backbone has ``feature_dim`` (C) and ``weights`` (where its weights came from, for the
run record). Names of :data:`BACKBONES`:

* ``resnet50`` — torchvision ResNet-50 up to ``layer4`` (2048 channels; Intra-batch,
  Proxy-Anchor, Multi-Similarity, ...).
* ``googlenet`` — torchvision GoogLeNet / Inception-v1 up to ``inception5b`` (1024 channels;
  DVML, PL-Manifolds). torchvision's port has BatchNorm after every convolution (the original
  Caffe model has none) and no auxiliary classifiers here. Input handling: torchvision's ImageNet
  weights were ported from TensorFlow and expect pixels scaled to [-1, 1]; with
  ``transform_input`` the network maps ImageNet-normalised inputs (what dmlkit's RGB transforms
  produce) to that scale itself. ``transform_input`` (a backbone kwarg) defaults to on with
  pretrained weights (``true`` or a file, assumed to be torchvision's format) and off with random
  initialisation, where it only shifts the input.
* ``bn_inception`` — **a substitution**: BN-Inception (Ioffe & Szegedy 2015, the backbone of many
  DML tables) is in neither torchvision nor timm (timm 1.0 has Inception-v3/v4 and
  Inception-ResNet-v2, with 2048/1536-d features and 299-px inputs). This name therefore builds
  torchvision's GoogLeNet with BatchNorm: the closest available model with ImageNet weights (an
  Inception network with BatchNorm and a 1024-d pooled feature), but not the same architecture
  (BN-Inception replaces the 5×5 convolutions by two 3×3 and has different reduction blocks), so
  results are not comparable with numbers reported for BN-Inception. A ``UserWarning`` says so at
  build time and ``backbone.note`` (copied into ``model.spec``) records it.
* ``small_cnn`` — :class:`~dmlkit.models.small_cnn.SmallCNN` for 8×8 to 64×64 images; takes
  ``in_channels`` natively; kwargs ``width`` (32) and ``depth`` (3).
* ``timm:<model_name>`` — any timm model, created with ``num_classes=0`` (no classifier tensors)
  and read through ``forward_features`` (``num_features`` channels; its pooling head is unused; NHWC
  outputs are permuted to NCHW, transformers give (B, N, C) tokens, which the head pools over N).
  Backbone kwargs go to ``timm.create_model``.

Gray images (``in_channels=1``) with the 3-channel backbones: the gray channel is repeated three
times in ``forward`` (no copy). For the first convolution this equals summing its weights over the
input channels, so ImageNet weights stay meaningful; no weights are changed. (dmlkit's gray
``imagenet`` transform normalises with the channel averages of ImageNet's mean/std.)

Input normalisation: torchvision backbones expect ImageNet mean/std (dmlkit's default). A timm
model's own values are in ``backbone.input_mean``/``input_std`` (from its ``pretrained_cfg``) and
in ``model.spec``; set ``data.transform.mean/std`` to them when they differ (CLIP, Inception-v3...).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from dmlkit.config.catalogue import TIMM_PREFIX, check_backbone
from dmlkit.errors import ConfigError, WeightsError
from dmlkit.models.pretrained import (
    LoadReport,
    Pretrained,
    build_torchvision_pretrained,
    check_pretrained,
    create_timm_pretrained,
    load_weights_file,
)
from dmlkit.models.small_cnn import SmallCNN
from dmlkit.registry import Registry

#: Backbone factories by name; ``timm:<name>`` is resolved by :func:`build_backbone`.
BACKBONES: Registry[nn.Module] = Registry("backbone")
#: Backbone kwargs set by dmlkit itself (from ``model.pretrained`` and the dataset's mode).
RESERVED_KWARGS = ("pretrained", "in_channels")
#: ImageNet normalisation (what dmlkit's RGB transforms apply). torchvision's TensorFlow-ported
#: GoogLeNet weights expect x_tf = (x * std + mean - 0.5) / 0.5 instead (``transform_input``).
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class WrappedBackbone(nn.Module):
    """A library model (in ``self.net``) read up to its last feature map.

    Attributes:
        feature_dim: Channels of the output.
        in_channels: 1 (gray, repeated to RGB) or 3.
        weights: Origin of the weights: ``random``, ``torchvision:<enum>``, ``timm:<tag>`` or ``file:<path>``.
        load_report: The :class:`LoadReport` when the weights came from a file.
        note: Anything a reader of the run record must know (e.g. a substitution).
    """

    def __init__(self, net: nn.Module, feature_dim: int, in_channels: int = 3) -> None:
        super().__init__()
        self.net = net
        self.feature_dim = int(feature_dim)
        self.in_channels = in_channels
        self.weights = "random"
        self.load_report: LoadReport | None = None
        self.note = ""
        self.input_mean: tuple[float, ...] = _IMAGENET_MEAN
        self.input_std: tuple[float, ...] = _IMAGENET_STD

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3 or 1, H, W) images → feature map; a single channel is repeated to three."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.forward_map(x)

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class ResNetFeatures(WrappedBackbone):
    """torchvision ResNet up to ``layer4`` (its ``avgpool`` and ``fc`` are not used)."""

    def __init__(self, net: nn.Module, in_channels: int = 3) -> None:
        net.fc = nn.Identity()
        super().__init__(net, _resnet_channels(net), in_channels)

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        return n.layer4(n.layer3(n.layer2(n.layer1(x))))


def _resnet_channels(net: nn.Module) -> int:
    last = net.layer4[-1]
    return int((last.bn3 if hasattr(last, "bn3") else last.bn2).num_features)


class GoogLeNetFeatures(WrappedBackbone):
    """torchvision GoogLeNet up to ``inception5b`` (1024 channels; no aux heads, dropout or fc).

    Args:
        net: A torchvision ``GoogLeNet``.
        transform_input: Map ImageNet-normalised inputs to the [-1, 1] scale of torchvision's
            ported weights (see the module docstring).
    """

    def __init__(self, net: nn.Module, transform_input: bool, in_channels: int = 3) -> None:
        net.fc = nn.Identity()
        net.aux_logits = False
        net.aux1 = net.aux2 = None
        net.transform_input = transform_input  # unused by us; kept consistent for readers
        super().__init__(net, 1024, in_channels)
        self.transform_input = transform_input
        scale = torch.tensor([s / 0.5 for s in _IMAGENET_STD]).view(1, 3, 1, 1)
        shift = torch.tensor([(m - 0.5) / 0.5 for m in _IMAGENET_MEAN]).view(1, 3, 1, 1)
        self.register_buffer("input_scale", scale, persistent=False)
        self.register_buffer("input_shift", shift, persistent=False)

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        if self.transform_input:
            x = x * self.input_scale + self.input_shift
        x = n.maxpool1(n.conv1(x))
        x = n.maxpool2(n.conv3(n.conv2(x)))
        x = n.maxpool3(n.inception3b(n.inception3a(x)))
        x = n.inception4e(n.inception4d(n.inception4c(n.inception4b(n.inception4a(x)))))
        return n.inception5b(n.inception5a(n.maxpool4(x)))


class TimmFeatures(WrappedBackbone):
    """A timm model's ``forward_features``, as NCHW maps (or (B, N, C) tokens for transformers)."""

    def __init__(self, net: nn.Module, in_channels: int = 3) -> None:
        super().__init__(net, int(net.num_features), in_channels)
        self.channels_last = str(getattr(net, "output_fmt", "NCHW")) == "NHWC"
        cfg = getattr(net, "pretrained_cfg", None) or {}
        self.input_mean = tuple(cfg.get("mean", _IMAGENET_MEAN))
        self.input_std = tuple(cfg.get("std", _IMAGENET_STD))

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net.forward_features(x)
        if self.channels_last and out.dim() == 4:
            out = out.permute(0, 3, 1, 2)
        return out


def _torchvision_enum_member(enum: Any, weights: str) -> Any:
    try:
        return enum[weights]
    except KeyError:
        valid = ", ".join(w.name for w in enum)
        raise ConfigError(
            f"config key 'model.backbone_kwargs.weights': unknown {weights!r}; valid choices: {valid}"
        ) from None


def _build_torchvision(
    name: str, builder: Callable[..., nn.Module], enum: Any, weights: str, pretrained: Pretrained, **kwargs: Any
) -> tuple[nn.Module, str]:
    """The torchvision model and the origin of its weights (file weights are loaded by the caller)."""
    member = _torchvision_enum_member(enum, weights)
    if pretrained is True:
        return build_torchvision_pretrained(builder, member, name, **kwargs), f"torchvision:{member}"
    return builder(weights=None, **kwargs), "random"


def _load_file(backbone: WrappedBackbone, pretrained: Pretrained, hint: str = "") -> None:
    if isinstance(pretrained, str):
        backbone.load_report = load_weights_file(backbone.net, pretrained, hint)
        backbone.weights = f"file:{pretrained}"


@BACKBONES.register("resnet50")
def resnet50(pretrained: Pretrained = False, in_channels: int = 3, weights: str = "IMAGENET1K_V1") -> nn.Module:
    """torchvision ResNet-50 (2048 channels).

    Args:
        pretrained: ``False``, ``True`` (torchvision's ``weights``) or a weights file.
        in_channels: 3, or 1 for gray images (repeated to RGB).
        weights: The torchvision weights with ``pretrained=True``: ``IMAGENET1K_V1`` (default; the
            original weights most DML papers use) or ``IMAGENET1K_V2``.
    """
    from torchvision.models import ResNet50_Weights
    from torchvision.models import resnet50 as build

    net, origin = _build_torchvision("resnet50", build, ResNet50_Weights, weights, pretrained)
    backbone = ResNetFeatures(net, in_channels)
    backbone.weights = origin
    _load_file(backbone, pretrained)
    return backbone


def _googlenet(
    name: str, pretrained: Pretrained, in_channels: int, weights: str, transform_input: bool | None
) -> WrappedBackbone:
    from torchvision.models import GoogLeNet_Weights, googlenet

    if transform_input is None:
        transform_input = pretrained is not False
    # With weights torchvision builds the aux heads to load them and then drops them.
    kwargs = {} if pretrained is True else {"aux_logits": False, "init_weights": True}
    net, origin = _build_torchvision(name, googlenet, GoogLeNet_Weights, weights, pretrained, **kwargs)
    backbone = GoogLeNetFeatures(net, bool(transform_input), in_channels)
    backbone.weights = origin
    hint = (
        "; bn_inception builds torchvision's GoogLeNet (BN-Inception is in neither torchvision nor timm), "
        "so it takes GoogLeNet weights in torchvision's format"
        if name == "bn_inception"
        else ""
    )
    _load_file(backbone, pretrained, hint)
    return backbone


@BACKBONES.register("googlenet")
def googlenet(
    pretrained: Pretrained = False,
    in_channels: int = 3,
    weights: str = "IMAGENET1K_V1",
    transform_input: bool | None = None,
) -> nn.Module:
    """torchvision GoogLeNet / Inception-v1 (1024 channels; DVML's backbone).

    Args:
        pretrained: ``False``, ``True`` (torchvision's ImageNet weights) or a weights file.
        in_channels: 3, or 1 for gray images (repeated to RGB).
        weights: torchvision weights name (only ``IMAGENET1K_V1`` exists).
        transform_input: Re-scale ImageNet-normalised inputs to [-1, 1] (see module docstring);
            ``None`` (default): on with pretrained weights, off otherwise.
    """
    return _googlenet("googlenet", pretrained, in_channels, weights, transform_input)


@BACKBONES.register("bn_inception")
def bn_inception(
    pretrained: Pretrained = False,
    in_channels: int = 3,
    weights: str = "IMAGENET1K_V1",
    transform_input: bool | None = None,
) -> nn.Module:
    """Substitution: torchvision's GoogLeNet with BatchNorm stands in for BN-Inception (see module docstring)."""
    note = (
        "bn_inception: BN-Inception is in neither torchvision nor timm; dmlkit builds torchvision's "
        "GoogLeNet (Inception-v1 with BatchNorm, 1024-d features) instead. Report results as GoogLeNet."
    )
    warnings.warn(note, UserWarning, stacklevel=3)
    backbone = _googlenet("bn_inception", pretrained, in_channels, weights, transform_input)
    backbone.note = note
    return backbone


@BACKBONES.register("small_cnn")
def small_cnn(pretrained: Pretrained = False, in_channels: int = 1, width: int = 32, depth: int = 3) -> nn.Module:
    """:class:`SmallCNN` (``width * 2**(depth-1)`` channels); no published weights, files only."""
    net = SmallCNN(in_channels, width, depth)
    net.weights, net.load_report, net.note = "random", None, ""
    if pretrained is True:
        raise WeightsError(
            "small_cnn has no published pretrained weights: pass a file with model.pretrained=/path/to/weights.pth "
            "or set model.pretrained=false"
        )
    if isinstance(pretrained, str):
        net.load_report = load_weights_file(net, pretrained)
        net.weights = f"file:{pretrained}"
    return net


def timm_backbone(name: str, pretrained: Pretrained = False, in_channels: int = 3, **kwargs: Any) -> nn.Module:
    """Any timm model by name (``timm:<name>`` in configs); ``kwargs`` go to ``timm.create_model``."""
    import timm

    if not timm.is_model(name):
        raise ConfigError(f"config key 'model.backbone': timm has no model {name!r} (see timm.list_models())")
    kwargs = {"num_classes": 0, **kwargs}
    try:
        if pretrained is True:
            net = create_timm_pretrained(name, **kwargs)
        else:
            net = timm.create_model(name, pretrained=False, **kwargs)
    except (TypeError, ValueError, AssertionError) as exc:
        raise ConfigError(f"config key 'model.backbone_kwargs': timm model {name!r} rejects {kwargs}: {exc}") from exc
    backbone = TimmFeatures(net, in_channels)
    if pretrained is True:
        backbone.weights = f"timm:{net.pretrained_cfg.get('hf_hub_id') or name}"
    _load_file(backbone, pretrained)
    return backbone


def backbone_names() -> list[str]:
    """Registered names plus the ``timm:<model_name>`` form."""
    return [*BACKBONES.names(), f"{TIMM_PREFIX}<model_name>"]


def build_backbone(
    name: str, pretrained: Pretrained = False, in_channels: int = 3, kwargs: dict[str, Any] | None = None
) -> nn.Module:
    """Backbone ``name`` for ``in_channels``-channel images.

    Raises:
        ConfigError: unknown name or kwargs (naming ``model.backbone``/``model.backbone_kwargs``).
        WeightsError: weights asked for but not available.
    """
    pretrained = check_pretrained(pretrained)
    kwargs = dict(kwargs or {})
    reserved = sorted(set(kwargs) & set(RESERVED_KWARGS))
    if reserved:
        raise ConfigError(
            f"config key 'model.backbone_kwargs.{reserved[0]}': set by dmlkit; use model.pretrained or the dataset"
        )
    check_backbone(name, BACKBONES.names())
    if name != "small_cnn" and (isinstance(in_channels, bool) or in_channels not in (1, 3)):
        raise ConfigError(f"in_channels: backbone {name!r} takes 1 (gray) or 3 (RGB) channels, got {in_channels!r}")
    if name.startswith(TIMM_PREFIX):
        return timm_backbone(name[len(TIMM_PREFIX) :], pretrained, in_channels, **kwargs)
    return BACKBONES.build(name, kwargs, key="model.backbone_kwargs", pretrained=pretrained, in_channels=in_channels)
