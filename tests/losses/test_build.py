"""Every loss by name: the loss contract, miners from the config, and error messages."""

import pytest
import torch

from dmlkit.errors import ConfigError
from dmlkit.losses import LOSSES, MINERS, MetricLoss, build_loss

from .conftest import CLASSES, DIM, FP64_LOSSES, make_batch

ALL_LOSSES = [
    "angular", "contrastive", "lifted", "magnet", "margin", "multi_similarity", "normalized_softmax", "npair",
    "proxy_anchor", "proxy_nca", "soft_triple", "triplet", "triplet2_dws",
]  # fmt: skip


def test_registered_names():
    assert LOSSES.names() == ALL_LOSSES
    assert MINERS.names() == ["batch_hard", "distance_weighted", "multi_similarity", "semihard"]
    assert set(ALL_LOSSES) >= FP64_LOSSES


@pytest.mark.parametrize("name", ALL_LOSSES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=["fp32", "fp64", "bf16"])
def test_every_loss_runs_and_backpropagates(name, dtype):
    x, y = make_batch(dtype, per_class=4)
    x.requires_grad_()
    loss = build_loss(name, {}, embedding_dim=DIM, num_classes=CLASSES)
    assert isinstance(loss, MetricLoss)
    out = loss(x, y)
    out.backward()
    expected_dtype = torch.float64 if dtype == torch.float64 and name in FP64_LOSSES else torch.float32
    assert out.dim() == 0 and out.dtype == expected_dtype and torch.isfinite(out) and out > 0
    assert x.grad is not None and x.grad.dtype == dtype and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for p in loss.parameters():
        assert p.dtype == torch.float32
        assert p.grad is not None and torch.isfinite(p.grad).all()


@pytest.mark.parametrize("name", ["contrastive", "triplet", "triplet2_dws", "margin", "multi_similarity", "angular"])
def test_pair_and_triplet_losses_accept_a_reference_set(name):
    x, y = make_batch(torch.float32)
    memory, memory_y = make_batch(torch.float32, seed=1, per_class=5)
    x.requires_grad_()
    out = build_loss(name, {}, num_classes=CLASSES)(x, y, memory, memory_y)
    out.backward()
    assert torch.isfinite(out) and x.grad.abs().sum() > 0


def test_reference_set_needs_both_tensors():
    x, y = make_batch(torch.float32)
    with pytest.raises(ValueError, match="pass ref_emb and ref_labels together"):
        build_loss("triplet")(x, y, ref_emb=x)


def test_miner_from_config_replaces_the_builtin_sampling():
    loss = build_loss("contrastive", {"miner": {"name": "multi_similarity", "epsilon": 0.2}})
    assert type(loss.miner).__name__ == "MultiSimilarityMiner" and loss.miner.epsilon == 0.2
    loss = build_loss("margin", {"miner": {"name": "batch_hard"}}, num_classes=CLASSES)
    assert type(loss.miner).__name__ == "BatchHardMiner"
    x, y = make_batch(torch.float32)
    assert torch.isfinite(loss(x, y))
    lifted = build_loss("lifted", {"normalize": False, "miner": {"name": "semihard", "margin": 0.5}})
    assert not lifted.miner.distance.normalize_embeddings and lifted.miner.margin == 0.5
    assert build_loss("triplet", {"miner": None}).miner is not None  # null keeps the built-in miner


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        (
            "tripplet",
            {},
            r"^loss: unknown loss 'tripplet'; valid choices: angular, contrastive, lifted, magnet, margin",
        ),
        ("triplet", {"margn": 0.1}, r"unknown key\(s\) loss\.margn for loss 'triplet'; valid keys: margin, mining"),
        ("triplet", {"margin": -1}, r"config key 'loss\.margin': must be >= 0, got -1"),
        ("triplet", {"margin": "0.2"}, r"config key 'loss\.margin': must be >= 0, got '0\.2'"),
        ("triplet", {"margin": float("nan")}, r"config key 'loss\.margin': must be >= 0, got nan"),
        ("triplet", {"squared": "yes"}, r"config key 'loss\.squared': must be true or false"),
        ("triplet", {"mining": "easy"}, r"config key 'loss\.mining': unknown 'easy'; valid choices: semihard, hard"),
        ("triplet", {"reduction": "sum"}, r"config key 'loss\.reduction': unknown 'sum'; valid choices: mean"),
        ("contrastive", {"neg_margin": 0}, r"config key 'loss\.neg_margin': must be > 0"),
        ("contrastive", {"pos_margin": 0.5, "neg_margin": 0.4}, r"'loss\.neg_margin': must be > pos_margin \(0\.5\)"),
        ("triplet2_dws", {"cutoff": 0}, r"config key 'loss\.cutoff': must be in \(0, 2\)"),
        ("triplet2_dws", {"nonzero_loss_cutoff": 0.4}, r"'loss\.nonzero_loss_cutoff': must be > cutoff \(0\.5\)"),
        ("margin", {"beta": -1.0}, r"config key 'loss\.beta': must be > 0"),
        ("angular", {"alpha": 90}, r"config key 'loss\.alpha': must be in \(0, 90\)"),
        ("npair", {"l2_reg": -0.1}, r"config key 'loss\.l2_reg': must be >= 0"),
        ("lifted", {"alpha": 0}, r"config key 'loss\.alpha': must be > 0"),
        ("multi_similarity", {"mining": True}, r"config key 'loss\.mining': unknown True"),
        ("soft_triple", {"centers_per_class": 0}, r"config key 'loss\.centers_per_class': must be an integer >= 1"),
        ("soft_triple", {"gamma": 0}, r"config key 'loss\.gamma': must be > 0"),
        ("proxy_anchor", {"lr_mult": -1}, r"config key 'loss\.lr_mult': must be >= 0"),
        ("proxy_nca", {"softmax_scale": 0}, r"config key 'loss\.softmax_scale': must be > 0"),
        ("normalized_softmax", {"temperature": 0}, r"config key 'loss\.temperature': must be > 0"),
        ("triplet", {"miner": {"name": "nope"}}, r"loss\.miner: unknown miner 'nope'; valid choices: batch_hard"),
        ("triplet", {"miner": "batch_hard"}, r"'loss\.miner': expected a mapping \{name: <miner>, \.\.\.\}"),
        ("triplet", {"miner": {"name": "semihard", "eps": 1}}, r"unknown key\(s\) loss\.miner\.eps for miner"),
        ("triplet", {"miner": {"name": "semihard", "margin": -1}}, r"'loss\.miner\.margin': must be >= 0"),
        ("triplet", {"mining": "hard", "miner": {"name": "semihard"}}, r"'loss\.mining' and 'loss\.miner': set one"),
        ("proxy_anchor", {"miner": {"name": "batch_hard"}}, r"loss 'proxy_anchor' does not take a miner"),
        ("npair", {"miner": {"name": "batch_hard"}}, r"loss 'npair' does not take a miner"),
    ],
)
def test_bad_loss_config(name, params, message):
    with pytest.raises(ConfigError, match=message):
        build_loss(name, params, embedding_dim=DIM, num_classes=CLASSES)


@pytest.mark.parametrize("name", ["proxy_anchor", "proxy_nca", "soft_triple", "normalized_softmax"])
def test_proxy_losses_need_classes_and_embedding_size(name):
    with pytest.raises(ConfigError, match=f"loss '{name}' needs the number of training classes and the embedding"):
        build_loss(name, {})


def test_per_class_beta_needs_classes():
    with pytest.raises(ConfigError, match=r"loss 'margin' needs the number of training classes \(got num_classes=0\)"):
        build_loss("margin", {"beta_per_class": True})
    assert build_loss("margin", {"beta_per_class": True}, num_classes=7).loss.beta.shape == (7,)
