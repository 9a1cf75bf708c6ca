"""The embedding head: pooling against hand computations, projection, normalisation, init, options."""

import pytest
import torch

from dmlkit.errors import ConfigError
from dmlkit.models.heads import EmbeddingHead, pool

FMAP = torch.arange(8.0).view(1, 2, 2, 2)  # channel 0 holds 0..3, channel 1 holds 4..7


@pytest.mark.parametrize(("mode", "expected"), [("avg", [1.5, 5.5]), ("max", [3.0, 7.0]), ("avgmax", [4.5, 12.5])])
def test_pooling_of_a_feature_map_by_hand(mode, expected):
    assert pool(FMAP, mode).tolist() == [expected]


def test_pooling_of_tokens_and_vectors():
    tokens = torch.tensor([[[1.0, 2.0], [3.0, 0.0]]])  # (B=1, N=2, C=2)
    assert pool(tokens, "avg").tolist() == [[2.0, 1.0]]
    assert pool(tokens, "max").tolist() == [[3.0, 2.0]]
    assert pool(tokens, "avgmax").tolist() == [[5.0, 3.0]]
    vectors = torch.randn(3, 4)
    assert pool(vectors, "max") is vectors
    with pytest.raises(ValueError, match="cannot pool"):
        pool(torch.zeros(2), "avg")


def test_projection_and_normalisation():
    head = EmbeddingHead(2, 3, pooling="avgmax")
    pooled = head.pool(FMAP)
    projected = head.project(pooled)
    expected = pooled @ head.linear.weight.T + head.linear.bias
    assert torch.allclose(projected, expected)
    out = head(FMAP)
    assert torch.allclose(out, expected / expected.norm(dim=1, keepdim=True))
    assert torch.allclose(out.norm(dim=1), torch.ones(1))
    raw = EmbeddingHead(2, 3, normalize=False)
    assert torch.equal(raw(FMAP), raw.project(raw.pool(FMAP)))


@pytest.mark.parametrize("dim", [0, None])
def test_no_linear_layer_keeps_the_pooled_feature(dim):
    head = EmbeddingHead(2, dim, normalize=False)
    assert head.embedding_dim == 2 and isinstance(head.linear, torch.nn.Identity)
    assert head(FMAP).tolist() == [[1.5, 5.5]]
    assert not list(head.parameters())


def test_initialisations():
    ortho = EmbeddingHead(16, 4, init="orthogonal").linear
    assert torch.allclose(ortho.weight @ ortho.weight.T, torch.eye(4), atol=1e-5)
    assert torch.equal(ortho.bias, torch.zeros(4))
    for init in ("kaiming", "xavier"):
        assert torch.equal(EmbeddingHead(16, 4, init=init).linear.bias, torch.zeros(4))
    assert EmbeddingHead(16, 4).linear.bias.abs().sum() > 0  # PyTorch's default init


def test_dropout_only_in_training():
    head = EmbeddingHead(64, 8, normalize=False, dropout=0.5)
    x = torch.ones(4, 64)
    head.eval()
    assert torch.equal(head(x), head.linear(x))
    head.train()
    assert not torch.equal(head(x), head.linear(x))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pooling": "mean"}, r"^config key 'model\.pooling': unknown 'mean'; valid choices: avg, max, avgmax$"),
        ({"init": "zeros"}, r"'model\.head_init': unknown 'zeros'; valid choices: default, orthogonal"),
        ({"embedding_dim": -1}, r"'model\.embedding_dim': expected an integer >= 0"),
        ({"embedding_dim": 1.5}, r"'model\.embedding_dim'"),
        ({"dropout": 1.0}, r"'model\.head_dropout': expected a probability"),
    ],
)
def test_bad_head_options_name_the_key(kwargs, message):
    args = {"feature_dim": 4, "embedding_dim": 2, **kwargs}
    with pytest.raises(ConfigError, match=message):
        EmbeddingHead(**args)
