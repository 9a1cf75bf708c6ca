"""Backbones by name, their output shapes, pretrained weights and frozen BatchNorm."""

import time

import pytest
import torch
import torchvision

from dmlkit.errors import ConfigError, WeightsError
from dmlkit.models import build_model
from dmlkit.models.heads import EmbeddingHead, pool


@pytest.mark.parametrize(
    ("backbone", "channels", "size", "feature_dim"),
    [
        ("small_cnn", 1, 8, 128),
        ("small_cnn", 1, 28, 128),
        ("small_cnn", 3, 28, 128),
        ("resnet50", 3, 64, 2048),
        ("googlenet", 3, 64, 1024),
        ("bn_inception", 1, 64, 1024),
        ("timm:resnet18", 3, 64, 512),
    ],
)
def test_backbones_give_embeddings(backbone, channels, size, feature_dim):
    model = build_model(backbone, 16, in_channels=channels).eval()
    with torch.no_grad():
        x = torch.randn(2, channels, size, size)
        out = model(x)
        features = model.features(x)
    assert model.feature_dim == feature_dim and features.shape == (2, feature_dim)
    assert out.shape == (2, 16) and torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)


def test_seams_compose_to_forward():
    model = build_model("small_cnn", 8, in_channels=1).eval()
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        projected = model.project(model.features(x))
        assert torch.allclose(model.finish(projected), model(x))
        assert not torch.allclose(projected.norm(dim=1), torch.ones(3))


def test_pooling_against_hand_computation():
    fmap = torch.arange(8.0).view(1, 2, 2, 2)  # channel 0: 0..3, channel 1: 4..7
    assert pool(fmap, "avg").tolist() == [[1.5, 5.5]]
    assert pool(fmap, "max").tolist() == [[3.0, 7.0]]
    assert pool(fmap, "avgmax").tolist() == [[4.5, 12.5]]
    tokens = torch.tensor([[[1.0, 2.0], [3.0, 0.0]]])
    assert pool(tokens, "max").tolist() == [[3.0, 2.0]]


def test_head_options():
    head = EmbeddingHead(4, 0, normalize=False)
    assert head.embedding_dim == 4 and isinstance(head.linear, torch.nn.Identity)
    ortho = EmbeddingHead(6, 3, init="orthogonal").linear
    w = ortho.weight
    assert torch.allclose(w @ w.T, torch.eye(3), atol=1e-5) and torch.equal(ortho.bias, torch.zeros(3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backbone": "vgg"}, r"model\.backbone|backbone 'vgg'"),
        ({"backbone": "timm:not_a_model"}, "timm has no model 'not_a_model'"),
        ({"pooling": "mean"}, r"'model\.pooling': unknown 'mean'; valid choices: avg, max, avgmax"),
        ({"head_init": "zeros"}, r"'model\.head_init': unknown 'zeros'"),
        ({"backbone_kwargs": {"widht": 3}}, r"model\.backbone_kwargs\.widht"),
    ],
)
def test_bad_model_config_names_the_key(kwargs, message):
    args = {"backbone": "small_cnn", "embedding_dim": 8, "in_channels": 1, **kwargs}
    with pytest.raises(ConfigError, match=message):
        build_model(**args)


def test_pretrained_true_offline_fails_fast_and_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(WeightsError, match=r"(?s)'resnet50' are not in the local cache.*model\.pretrained=/path"):
        build_model("resnet50", 8, pretrained=True)
    with pytest.raises(WeightsError, match="timm:resnet18"):
        build_model("timm:resnet18", 8, pretrained=True)
    assert time.perf_counter() - start < 20


def test_pretrained_from_local_file(tmp_path):
    reference = torchvision.models.resnet50(weights=None)
    path = tmp_path / "resnet50.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, path)
    model = build_model("resnet50", 8, pretrained=str(path))
    assert torch.equal(model.backbone.net.conv1.weight, reference.conv1.weight)
    assert torch.equal(model.backbone.net.layer4[2].bn3.running_var, reference.layer4[2].bn3.running_var)


def test_pretrained_file_errors(tmp_path):
    with pytest.raises(WeightsError, match=r"weights file not found: .*missing\.pth"):
        build_model("resnet50", 8, pretrained=str(tmp_path / "missing.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"garbage")
    with pytest.raises(WeightsError, match=r"cannot read pretrained weights .*junk\.pth"):
        build_model("resnet50", 8, pretrained=str(junk))
    other = tmp_path / "other.pth"
    torch.save({"encoder_weights": torch.zeros(3)}, other)
    with pytest.raises(WeightsError, match="no tensor of .*other.pth matches the backbone"):
        build_model("resnet50", 8, pretrained=str(other))
    with pytest.raises(WeightsError, match="small_cnn has no published pretrained weights"):
        build_model("small_cnn", 8, pretrained=True, in_channels=1)


def test_frozen_batchnorm_stays_frozen():
    model = build_model("small_cnn", 8, in_channels=1, freeze_bn=True)
    model.train()
    bn = model.backbone.layers[1]
    before = bn.running_mean.clone()
    assert not bn.training and not bn.weight.requires_grad
    loss = model(torch.randn(4, 1, 28, 28) * 5 + 3).sum()
    loss.backward()
    assert torch.equal(bn.running_mean, before) and bn.weight.grad is None
    assert model.head.linear.weight.grad is not None
    normal = build_model("small_cnn", 8, in_channels=1).train()
    normal(torch.randn(4, 1, 28, 28) + 3)
    assert not torch.equal(normal.backbone.layers[1].running_mean, torch.zeros(32))
