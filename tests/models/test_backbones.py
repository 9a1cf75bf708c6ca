"""Backbones by name: feature-map shapes, gray input, GoogLeNet input handling, bad names and kwargs."""

import pytest
import torch
from torch import nn

from dmlkit.errors import ConfigError
from dmlkit.models import BACKBONES, backbone_names, build_backbone
from dmlkit.models.backbones import TimmFeatures


@pytest.mark.parametrize(
    ("name", "channels", "size", "kwargs", "out_shape"),
    [
        ("small_cnn", 1, 8, {}, (2, 128, 2, 2)),
        ("small_cnn", 1, 28, {}, (2, 128, 7, 7)),
        ("small_cnn", 3, 28, {"width": 8, "depth": 4}, (2, 64, 4, 4)),
        ("small_cnn", 1, 8, {"width": 4, "depth": 6}, (2, 128, 1, 1)),  # 8→4→2→1→1→1: never 0×0
        ("resnet50", 3, 32, {}, (2, 2048, 1, 1)),
        ("googlenet", 3, 32, {}, (2, 1024, 1, 1)),
        ("timm:resnet18", 3, 64, {}, (2, 512, 2, 2)),
        ("timm:vit_tiny_patch16_224", 3, 32, {"img_size": 32}, (2, 5, 192)),  # class token + 2×2 patches
    ],
)
def test_backbone_gives_feature_map(name, channels, size, kwargs, out_shape):
    net = build_backbone(name, in_channels=channels, kwargs=kwargs).eval()
    with torch.no_grad():
        out = net(torch.randn(2, channels, size, size))
    assert out.shape == out_shape
    assert net.feature_dim == out_shape[-1 if out.dim() == 3 else 1]
    assert net.weights == "random"


def test_bn_inception_is_a_documented_googlenet_substitution():
    with pytest.warns(UserWarning, match="BN-Inception is in neither torchvision nor timm"):
        net = build_backbone("bn_inception").eval()
    assert type(net.net).__name__ == "GoogLeNet" and net.feature_dim == 1024
    assert "GoogLeNet" in net.note
    assert "substitution" in BACKBONES.get("bn_inception").__doc__.lower()


def test_gray_images_are_repeated_to_rgb():
    net = build_backbone("timm:resnet18", in_channels=1).eval()
    gray = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(gray), net(gray.repeat(1, 3, 1, 1)))


def test_small_cnn_takes_the_channels_natively():
    net = build_backbone("small_cnn", in_channels=1)
    assert net.layers[0].in_channels == 1
    assert build_backbone("small_cnn", in_channels=4).layers[0].in_channels == 4


def test_googlenet_transform_input_matches_torchvision(tmp_path):
    """With (file) weights the features equal torchvision's own forward with ``transform_input``."""
    from torchvision.models import googlenet

    reference = googlenet(weights=None, aux_logits=False, init_weights=False, transform_input=True).eval()
    path = tmp_path / "googlenet.pth"
    torch.save(reference.state_dict(), path)
    net = build_backbone("googlenet", pretrained=str(path)).eval()
    assert net.transform_input
    captured = {}
    reference.inception5b.register_forward_hook(lambda m, i, o: captured.update(out=o))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        reference(x)
        assert torch.allclose(net(x), captured["out"], atol=1e-5)
    assert not build_backbone("googlenet").transform_input  # random init: inputs used as they are
    assert not build_backbone("googlenet", pretrained=str(path), kwargs={"transform_input": False}).transform_input


def test_timm_channels_last_output_is_permuted():
    class NHWCNet(nn.Module):
        num_features = 5
        output_fmt = "NHWC"

        def forward_features(self, x):
            return x.permute(0, 2, 3, 1)

    x = torch.randn(2, 3, 4, 6)
    assert torch.equal(TimmFeatures(NHWCNet())(x), x)


def test_input_normalisation_is_recorded():
    assert build_backbone("resnet50").input_mean == (0.485, 0.456, 0.406)
    vit = build_backbone("timm:vit_tiny_patch16_224", kwargs={"img_size": 32})
    assert vit.input_mean == vit.input_std == (0.5, 0.5, 0.5)  # from timm's pretrained_cfg


def test_names_list_timm_form():
    assert {"resnet50", "googlenet", "bn_inception", "small_cnn", "timm:<model_name>"} <= set(backbone_names())


@pytest.mark.parametrize(
    ("name", "channels", "kwargs", "message"),
    [
        ("vgg", 3, {}, r"'model\.backbone': unknown 'vgg'; valid choices: .*resnet50.*timm:<model_name>"),
        ("timm:not_a_model", 3, {}, r"'model\.backbone': timm has no model 'not_a_model'"),
        ("small_cnn", 1, {"widht": 3}, r"model\.backbone_kwargs\.widht"),
        ("small_cnn", 1, {"width": 0}, r"model\.backbone_kwargs: .*width must be a positive integer"),
        ("small_cnn", 1, {"pretrained": True}, r"'model\.backbone_kwargs\.pretrained': set by dmlkit"),
        ("resnet50", 3, {"weights": "IMAGENET9K"}, r"'model\.backbone_kwargs\.weights': unknown 'IMAGENET9K'"),
        ("resnet50", 2, {}, r"in_channels: backbone 'resnet50' takes 1 \(gray\) or 3 \(RGB\)"),
        ("timm:resnet18", 3, {"no_such_arg": 1}, r"'model\.backbone_kwargs': timm model 'resnet18' rejects"),
    ],
)
def test_bad_backbone_config_names_the_key(name, channels, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        build_backbone(name, in_channels=channels, kwargs=kwargs)
