"""DVML: KL closed form, phase-dependent gradient flow, z_I at test time, every base loss, resume."""

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from dmlkit.config import load_config
from dmlkit.errors import ConfigError
from dmlkit.losses import LOSSES, build_loss
from dmlkit.methods.dvml import DVMLMethod, kl_to_standard_normal, reconstruction_loss
from dmlkit.models import build_model
from dmlkit.training.checkpoint import load_checkpoint
from dmlkit.training.trainer import Trainer
from paths import QUICKSTART

CLASSES, DIM = 4, 8


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    expected = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(1).mean()
    assert kl_to_standard_normal(mu, logvar).item() == pytest.approx(expected.item(), rel=1e-12)


def test_reconstruction_reductions():
    a, b = torch.ones(2, 3, 4), torch.zeros(2, 3, 4)
    assert reconstruction_loss(a, b, "sum").item() == 4.0 and reconstruction_loss(a, b, "mean").item() == 1.0


def make(loss_name="triplet", **kwargs):
    model = build_model("small_cnn", embedding_dim=DIM, in_channels=1, normalize=True)
    loss = build_loss(loss_name, {}, embedding_dim=DIM, num_classes=CLASSES)
    method = DVMLMethod(loss, model.feature_dim, DIM, epochs=4, num_samples=3, tsne=False, **kwargs)
    return model, method


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(16, 1, 16, 16, generator=g), "label": torch.arange(CLASSES).repeat_interleave(4)}


def grads(module):
    return [p.grad for p in module.parameters() if p.grad is not None and p.grad.abs().sum() > 0]


@pytest.mark.parametrize("phase", [1, 2])
def test_reconstruction_reaches_the_embedding_only_in_phase_2(phase):
    only_recon = [0.0, 1.0, 0.0, 0.0]
    model, method = make(phase1_epochs=2, phase1_lambdas=only_recon, phase2_lambdas=only_recon)
    method.epoch = 0 if phase == 1 else 2
    assert method.phase == phase
    method.training_step(model, batch()).loss.backward()
    assert grads(method.decoder)  # the decoder always learns to reconstruct
    reached = bool(grads(method.variational)) and bool(grads(model.head)) and bool(grads(model.backbone))
    assert reached == (phase == 2)


@pytest.mark.parametrize("detach", [True, False])
def test_reconstruction_target_gets_no_gradient(detach):
    model, method = make(phase1_epochs=4, phase1_lambdas=[0.0, 1.0, 0.0, 0.0], detach_target=detach)
    x = torch.randn(16, model.feature_dim, requires_grad=True)
    model.features = lambda images: x  # the pooled features as a leaf: only the target path can reach it
    method.training_step(model, batch()).loss.backward()
    assert (x.grad is None or x.grad.abs().sum() == 0) == detach


def test_eval_and_embed_use_z_i_only():
    model, method = make()
    images = batch()["image"]
    model.eval()
    before = method.embed_for_eval(model, images)
    torch.nn.init.normal_(method.variational.mu.weight)
    torch.nn.init.normal_(method.decoder.layers[0].weight)
    after = method.embed_for_eval(model, images)
    assert torch.equal(before, after) and torch.equal(after, model(images))
    assert torch.allclose(after, model.finish(model.project(model.features(images))))


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_base_loss_composes(name):
    model, method = make(name)
    method.epoch = 3  # phase 2: every term reaches the model
    out = method.training_step(model, batch())
    out.loss.backward()
    assert torch.isfinite(out.loss) and grads(model.backbone) and grads(method.variational)
    assert set(out.logs) == {"kl", "recon", "metric_synthetic", "metric_invariant", "phase"}


def test_bad_parameters_name_the_key():
    loss = build_loss("triplet", {})
    with pytest.raises(ConfigError, match="method.phase1_lambdas"):
        DVMLMethod(loss, 16, DIM, 4, phase1_lambdas=[1, 1, 1])
    with pytest.raises(ConfigError, match="method.num_samples"):
        DVMLMethod(loss, 16, DIM, 4, num_samples=0)


def test_the_phase_length_is_derived_from_the_epochs():
    loss = build_loss("triplet", {})
    assert DVMLMethod(loss, 16, DIM, epochs=8).phase1_epochs == 2  # a quarter of the run
    assert DVMLMethod(loss, 16, DIM, epochs=8, phase1_epochs=5).phase1_epochs == 5


DVML = [
    "trainer.accelerator=cpu",
    "trainer.progress_bar=false",
    "method={name: dvml, num_samples: 4, phase1_epochs: 1}",
    "loss.name=triplet",
    "eval.metrics=[recall]",
    "eval.recall_at=[1]",
    "eval.untrained=false",
    "trainer.max_steps_per_epoch=4",
    "trainer.epochs=2",
    "trainer.checkpoint_every_steps=2",
]


@pytest.mark.slow
def test_resume_mid_epoch_keeps_the_phase_and_writes_tsne(tmp_path, monkeypatch):
    straight = Trainer(load_config(QUICKSTART, DVML), tmp_path / "a").fit()
    for name in ("tsne_test.png", "tsne_centred.png"):
        assert (tmp_path / "a" / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    original = DVMLMethod.after_step

    def crash(self, model, step):
        original(self, model, step)
        if step == 6:  # the 7th step (epoch 2, phase 2); the last checkpoint was written after step 6
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(DVMLMethod, "after_step", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        Trainer(load_config(QUICKSTART, DVML), tmp_path / "b").fit()
    monkeypatch.setattr(DVMLMethod, "after_step", original)
    state = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert state["global_step"] == 6 and state["batch_in_epoch"] == 2  # resumes mid-epoch: no on_epoch_start
    assert state["method_extra"] == {"epoch": 1}
    resumed = Trainer(load_config(QUICKSTART, DVML), tmp_path / "b", resume=True).fit()
    wa = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    wb = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert all(torch.equal(wa["model"][k], wb["model"][k]) for k in wa["model"])
    assert all(torch.equal(wa["method"][k], wb["method"][k]) for k in wa["method"])
    # the epoch's mean train loss of a run resumed mid-epoch covers only its own steps
    assert [h["metrics"] for h in resumed["history"]] == [h["metrics"] for h in straight["history"]]
