"""Intra-batch MPN: attention normalisation, permutation equivariance, backbone-only eval, gradients, CE."""

import math

import pytest
import torch
import torch.nn.functional as F

from dmlkit.config import load_config
from dmlkit.errors import ConfigError
from dmlkit.methods.intra_batch import (
    BatchAttention,
    IntraBatchMethod,
    MessagePassingNetwork,
    extra_zero_softmax,
    smoothed_cross_entropy,
)
from dmlkit.models import build_model
from dmlkit.training.trainer import Trainer
from paths import QUICKSTART


def test_extra_zero_softmax_equals_its_formula():
    s = torch.tensor([[1.0, -2.0, 0.5], [-3.0, -1.0, -2.0]], dtype=torch.float64)
    for row, out in zip(s, extra_zero_softmax(s), strict=True):
        m = max(0.0, float(row.max()))
        den = sum(math.exp(float(v) - m) for v in row) + math.exp(-m)
        assert out.tolist() == pytest.approx([math.exp(float(v) - m) / den for v in row])
        assert float(out.sum()) < 1  # the implicit zero logit takes the rest
    big = torch.tensor([1000.0, 999.0])  # stable for large scores
    assert torch.isfinite(extra_zero_softmax(big)).all()


def test_plain_softmax_option_sums_to_one():
    att = BatchAttention(8, 2, dropout=0.0, normalisation="softmax")
    w = att.weights(torch.randn(5, 8))
    assert w.shape == (2, 5, 5) and torch.allclose(w.sum(-1), torch.ones(2, 5))


@pytest.mark.parametrize("train", [False, True])
def test_mpn_is_permutation_equivariant(train):
    torch.manual_seed(0)
    mpn = MessagePassingNetwork(16, 5, layers=2, heads=4, dropout=0.0, concat=True).double()
    mpn.train(train)
    x = torch.randn(9, 16, dtype=torch.float64)
    perm = torch.randperm(9)
    assert torch.allclose(mpn(x[perm]), mpn(x)[perm], atol=1e-10)
    assert mpn.features(x).shape == (9, 32)  # concatenation of both layers


def test_smoothed_cross_entropy_by_hand():
    logits = torch.tensor([[2.0, 0.5, -1.0]], dtype=torch.float64)
    eps, t = 0.1, 0.5
    z = [v / t for v in logits[0].tolist()]
    log_p = [v - math.log(sum(math.exp(u) for u in z)) for v in z]
    target = [(1 - eps) * (c == 1) + eps / 3 for c in range(3)]
    expected = -sum(q * lp for q, lp in zip(target, log_p, strict=True))
    assert smoothed_cross_entropy(logits, torch.tensor([1]), eps, t).item() == pytest.approx(expected)


def make():
    torch.manual_seed(0)
    model = build_model("small_cnn", embedding_dim=16, in_channels=1, normalize=True, pooling="max")
    return model, IntraBatchMethod(num_classes=4, embedding_dim=16, heads=4)


def batch():
    return {"image": torch.randn(12, 1, 16, 16), "label": torch.arange(4).repeat_interleave(3)}


def test_eval_uses_the_backbone_only():
    model, method = make()
    model.eval()
    images = batch()["image"]
    before = method.embed_for_eval(model, images)
    del method.mpn, method.classifier  # nothing of the method is needed at test time
    assert torch.equal(before, method.embed_for_eval(model, images)) and torch.equal(before, model(images))


def test_mpn_loss_reaches_the_backbone():
    model, method = make()
    b = batch()
    fc7 = model.project(model.features(b["image"]))
    smoothed_cross_entropy(method.mpn(F.normalize(fc7, dim=1)), b["label"]).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters() if p.requires_grad)
    out = method.training_step(model, b)
    assert set(out.logs) == {"ce_backbone", "ce_mpn"} and torch.isfinite(out.loss)


def test_bad_parameters_name_the_key():
    with pytest.raises(ConfigError, match="method.heads"):
        IntraBatchMethod(num_classes=3, embedding_dim=16, heads=3)
    with pytest.raises(ConfigError, match="method.attention"):
        IntraBatchMethod(num_classes=3, embedding_dim=16, attention="sparse")
    with pytest.raises(ConfigError, match=r"method.reload_best_at.*2\.\.3"):
        IntraBatchMethod(num_classes=3, embedding_dim=16, epochs=3, reload_best_at=[1])
    with pytest.raises(ConfigError, match=r"method.reload_best_at.*before the first evaluation"):
        IntraBatchMethod(num_classes=3, embedding_dim=16, epochs=3, eval_every=2, reload_best_at=[2])


def test_reload_best_is_asked_for_before_the_named_epochs():
    method = IntraBatchMethod(num_classes=3, embedding_dim=16, epochs=60, reload_best_at=[31, 51])
    assert [e + 1 for e in range(60) if method.restore_best_before(e)] == [31, 51]


@pytest.mark.slow
def test_trains_in_the_trainer(tmp_path):
    cfg = load_config(
        QUICKSTART,
        [
            "trainer.accelerator=cpu",
            "trainer.progress_bar=false",
            "method={name: intra_batch, heads: 2, test_refinement: true, refinement_k1: 10}",
            "loss=null",
            "model.pooling=max",
            "optimizer.name=radam",
            "trainer.epochs=1",
            "trainer.max_steps_per_epoch=3",
            "eval.metrics=[recall]",
            "eval.recall_at=[1]",
        ],
    )
    metrics = Trainer(cfg, tmp_path / "run").fit()
    assert metrics["status"] == "completed" and "recall@1" in metrics["test"]
    assert {"refined_recall@1", "refined_map@r"} <= set(metrics["test"])  # the extra, after the last epoch
    assert (tmp_path / "run" / "plots" / "retrieval.png").read_bytes()[:4] == b"\x89PNG"
