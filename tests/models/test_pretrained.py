"""Pretrained weights: local files (torch and safetensors), the cache, and helpful errors when offline."""

import time
import urllib.error
import warnings

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from dmlkit.errors import ConfigError, WeightsError
from dmlkit.models import build_backbone, build_model, load_weights_file
from dmlkit.models import pretrained as pretrained_module
from dmlkit.models.small_cnn import SmallCNN


@pytest.fixture(scope="module")
def resnet50_file(tmp_path_factory):
    """A randomly initialised torchvision ResNet-50, saved as a DataParallel training checkpoint."""
    reference = torchvision.models.resnet50(weights=None)
    path = tmp_path_factory.mktemp("weights") / "resnet50.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, path)
    return reference, path


def test_local_torch_file_round_trip(resnet50_file):
    reference, path = resnet50_file
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # everything matches: fc.* is dropped without a warning
        model = build_model("resnet50", 8, pretrained=str(path))
    net = model.backbone.net
    for key, value in reference.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(net.state_dict()[key], value), key
    report = model.backbone.load_report
    assert report.dropped == ["module.fc.weight", "module.fc.bias"] and not report.missing and not report.unexpected
    assert model.spec["weights"] == f"file:{path}"


def test_local_safetensors_round_trip_drops_aux_heads(tmp_path):
    reference = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    path = tmp_path / "googlenet.safetensors"
    save_file({f"model.{k}": v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    net = build_backbone("googlenet", pretrained=str(path))
    assert torch.equal(net.net.inception5b.branch1.conv.weight, reference.inception5b.branch1.conv.weight)
    assert torch.equal(net.net.conv1.bn.running_var, reference.conv1.bn.running_var)
    assert any(k.startswith("model.aux1.") for k in net.load_report.dropped) and not net.load_report.unexpected


def test_dmlkit_checkpoint_keys_are_found(tmp_path):
    source = build_model("small_cnn", 4, in_channels=1)
    path = tmp_path / "run.pt"
    torch.save({"model": source.state_dict()}, path)  # keys "backbone.layers.0.weight", "head.linear.*"
    model = build_model("small_cnn", 4, in_channels=1, pretrained=str(path))
    assert torch.equal(model.backbone.layers[0].weight, source.backbone.layers[0].weight)
    assert model.backbone.load_report.dropped == ["head.linear.weight", "head.linear.bias"]


def test_partial_file_warns_and_reports(tmp_path):
    source = SmallCNN(1, 8, 2)
    path = tmp_path / "partial.pth"
    state = source.state_dict()
    torch.save({"layers.0.weight": state["layers.0.weight"], "extra.weight": torch.zeros(2)}, path)
    target = SmallCNN(1, 8, 2)
    with pytest.warns(UserWarning, match=r"partial\.pth: loaded 1 tensors, .* missing, 1 unexpected"):
        report = load_weights_file(target, path)
    assert report.loaded == ["layers.0.weight"] and report.unexpected == ["extra.weight"]
    assert "layers.1.weight" in report.missing
    assert torch.equal(target.layers[0].weight, source.layers[0].weight)


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(WeightsError, match=r"weights file not found: .*missing\.pth"):
        build_model("small_cnn", 8, in_channels=1, pretrained=str(tmp_path / "missing.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"garbage")
    with pytest.raises(WeightsError, match=r"cannot read pretrained weights .*junk\.pth"):
        build_model("small_cnn", 8, in_channels=1, pretrained=str(junk))
    other = tmp_path / "other.pth"
    torch.save({"encoder_weights": torch.zeros(3)}, other)
    with pytest.raises(WeightsError, match=r"no tensor of .*other\.pth matches the backbone"):
        build_model("small_cnn", 8, in_channels=1, pretrained=str(other))
    wrong = tmp_path / "wrong.pth"
    torch.save(SmallCNN(1, 16, 2).state_dict(), wrong)
    with pytest.raises(WeightsError, match=r"wrong\.pth: .* wrong shape, e\.g\. layers\.0\.weight"):
        build_model("small_cnn", 8, in_channels=1, pretrained=str(wrong))
    empty = tmp_path / "empty.pth"
    torch.save({"epoch": 1}, empty)
    with pytest.raises(WeightsError, match=r"empty\.pth holds no tensors"):
        build_model("small_cnn", 8, in_channels=1, pretrained=str(empty))


def test_bn_inception_file_mismatch_explains_the_substitution(tmp_path):
    path = tmp_path / "bn_inception.pth"
    torch.save({"inception_3a_1x1.weight": torch.zeros(64, 192, 1, 1)}, path)
    with pytest.warns(UserWarning), pytest.raises(WeightsError, match="takes GoogLeNet weights"):
        build_model("bn_inception", 8, pretrained=str(path))


@pytest.mark.parametrize("value", ["", "  ", 1, None])
def test_bad_pretrained_values(value):
    with pytest.raises(ConfigError, match="'model.pretrained': expected true, false or a file path"):
        build_model("small_cnn", 8, in_channels=1, pretrained=value)


def test_pretrained_true_offline_fails_fast_and_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    start = time.perf_counter()
    for name in ("resnet50", "googlenet"):
        with pytest.raises(WeightsError) as info:
            build_model(name, 8, pretrained=True)
        message = str(info.value)
        assert f"weights for {name!r} are not in the local cache ({cache})" in message
        assert "could not be downloaded (offline" in message
        assert "model.pretrained=/path/to/weights.pth" in message and "model.pretrained=false" in message
    with pytest.raises(WeightsError, match=r"(?s)'timm:resnet18' are not in the local cache \(.*huggingface"):
        build_model("timm:resnet18", 8, pretrained=True)
    with pytest.raises(WeightsError, match="small_cnn has no published pretrained weights"):
        build_model("small_cnn", 8, pretrained=True, in_channels=1)
    with pytest.raises(WeightsError, match="timm has no pretrained weights for 'darknet17'"):
        build_model("timm:darknet17", 8, pretrained=True)
    assert time.perf_counter() - start < 10


def test_failed_download_is_a_weights_error(tmp_path, monkeypatch):
    """Online but unreachable: the download error is wrapped, never a random init."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("DMLKIT_OFFLINE", raising=False)

    def unreachable(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", unreachable)
    with pytest.raises(WeightsError, match=r"'resnet50' .* could not be downloaded \(URLError: .*Name or service"):
        build_model("resnet50", 8, pretrained=True)


def test_pretrained_true_uses_the_torch_cache_first(resnet50_file, tmp_path, monkeypatch):
    reference, _ = resnet50_file
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = pretrained_module.torchvision_cache_dir()
    cache.mkdir(parents=True)
    torch.save(reference.state_dict(), cache / "resnet50-0676ba61.pth")  # IMAGENET1K_V1's file name
    model = build_model("resnet50", 8, pretrained=True)  # offline (conftest): must come from the cache
    assert torch.equal(model.backbone.net.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)
    assert model.spec["weights"] == "torchvision:ResNet50_Weights.IMAGENET1K_V1"
