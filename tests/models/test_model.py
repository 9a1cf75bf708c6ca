"""EmbeddingModel seams, parameter groups, the run record and build_model's config errors."""

import pytest
import torch

from dmlkit.errors import ConfigError
from dmlkit.models import build_model


def test_seams_compose_to_forward():
    model = build_model("small_cnn", 8, in_channels=1).eval()
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        features = model.features(x)
        projected = model.project(features)
        out = model(x)
    assert features.shape == (3, model.feature_dim) == (3, 128)
    assert projected.shape == out.shape == (3, model.embedding_dim) == (3, 8)
    assert torch.allclose(model.embed(features), out) and torch.allclose(model.finish(projected), out)
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-6)
    assert not torch.allclose(projected.norm(dim=1), torch.ones(3))  # project() is unnormalised


def test_unnormalised_and_linear_free_models():
    x = torch.randn(2, 1, 8, 8)
    raw = build_model("small_cnn", 8, in_channels=1, normalize=False).eval()
    with torch.no_grad():
        assert torch.equal(raw(x), raw.project(raw.features(x)))
    plain = build_model("small_cnn", 0, in_channels=1, pooling="max").eval()
    assert plain.embedding_dim == plain.feature_dim == 128
    with torch.no_grad():
        pooled = plain.backbone(x).amax((2, 3))
        assert torch.allclose(plain(x), torch.nn.functional.normalize(pooled, dim=1))


def test_resnet50_max_pooling_gray_input():
    model = build_model("resnet50", 16, pooling="max", in_channels=1).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, 32, 32))
    assert out.shape == (2, 16) and model.feature_dim == 2048


def test_spec_records_the_protocol():
    model = build_model("small_cnn", 8, in_channels=1, pooling="avgmax", backbone_kwargs={"width": 8})
    assert model.spec["pooling"] == "avgmax" and model.spec["weights"] == "random"
    assert model.spec["feature_dim"] == 32 and model.spec["backbone_kwargs"] == {"width": 8}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backbone": "vgg"}, r"^config key 'model\.backbone': unknown 'vgg'"),
        ({"pooling": "mean"}, r"^config key 'model\.pooling': unknown 'mean'; valid choices: avg, max, avgmax$"),
        ({"head_init": "zeros"}, r"'model\.head_init': unknown 'zeros'"),
        ({"embedding_dim": -4}, r"'model\.embedding_dim'"),
        ({"normalize": "yes"}, r"'model\.normalize': expected true or false"),
        ({"freeze_bn": 1}, r"'model\.freeze_bn': expected true or false"),
        ({"backbone_kwargs": [1]}, r"'model\.backbone_kwargs': expected a mapping"),
        ({"backbone_kwargs": {"widht": 3}}, r"model\.backbone_kwargs\.widht"),
        ({"head_dropout": 2.0}, r"'model\.head_dropout'"),
    ],
)
def test_bad_model_config_names_the_key(kwargs, message):
    args = {"backbone": "small_cnn", "embedding_dim": 8, "in_channels": 1, **kwargs}
    with pytest.raises(ConfigError, match=message):
        build_model(**args)
