"""DVML: KL closed form, phase-dependent gradient flow, z_I at test time, every base loss, resume."""

import csv

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from dmlkit.config import load_config
from dmlkit.errors import ConfigError
from dmlkit.losses import LOSSES, build_loss
from dmlkit.methods.dvml import DVMLMethod, kl_to_standard_normal, reconstruction_loss
from dmlkit.methods.dvml.method import class_spread, phase1_length, variance_scale
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


def test_reconstruction_forms_against_a_hand_loop():
    g = torch.Generator().manual_seed(1)
    rec, x = torch.randn(3, 5, 7, generator=g, dtype=torch.float64), torch.randn(5, 7, generator=g, dtype=torch.float64)
    items = [[[(rec[t, b, d] - x[b, d]).item() ** 2 for d in range(7)] for b in range(5)] for t in range(3)]
    expected = {
        "sum": sum(sum(row) for per_t in items for row in per_t) / 15,
        "mean": sum(sum(row) / 7 for per_t in items for row in per_t) / 15,
        "norm": sum(sum(row) ** 0.5 for per_t in items for row in per_t) / 15,  # the paper's eq. 9
    }
    for form, value in expected.items():
        assert reconstruction_loss(rec, x, form).item() == pytest.approx(value, rel=1e-12), form
    zero = torch.zeros(2, 4, requires_grad=True)
    reconstruction_loss(zero, torch.zeros(2, 4), "norm").backward()
    assert torch.isfinite(zero.grad).all()  # the norm's gradient at 0 stays finite


@pytest.mark.parametrize(
    ("epochs", "fraction", "phase1"),
    [(1, 0.25, 0), (2, 0.25, 1), (3, 0.25, 1), (4, 0.25, 1), (1, 0.5, 1), (2, 0.5, 1), (3, 0.5, 2), (4, 0.5, 2),
     (1, 0.0, 0), (4, 0.0, 0), (1, 1.0, 1), (3, 1.0, 3), (2, 0.75, 2), (3, 0.75, 2), (10, 0.25, 3)],
)  # fmt: skip
def test_phase_1_length_rounds_half_up(epochs, fraction, phase1):
    assert phase1_length(epochs, fraction) == phase1
    loss = build_loss("triplet", {})
    method = DVMLMethod(loss, 16, DIM, epochs=epochs, phase1_fraction=fraction)
    assert method.summary()["phase1_epochs"] == phase1
    assert method.summary()["phase2_from_epoch"] == (phase1 + 1 if phase1 < epochs else None)


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


@pytest.mark.parametrize("form", ["mean", "norm", "sum"])
@pytest.mark.parametrize("phase", [1, 2])
def test_reconstruction_reaches_the_embedding_only_in_phase_2(phase, form):
    only_recon = [0.0, 1.0, 0.0, 0.0]
    model, method = make(
        phase1_epochs=2, phase1_lambdas=only_recon, phase2_lambdas=only_recon, reconstruction=form, diagnostics_every=0
    )
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
    assert {"kl", "recon", "metric_synthetic", "metric_invariant", "phase"} <= set(out.logs)


@pytest.mark.parametrize("phase", [1, 2])
def test_diagnostics_show_which_terms_reach_z_i(phase):
    model, method = make(phase1_epochs=2, diagnostics_every=1)
    method.epoch = 0 if phase == 1 else 2
    logs = method.training_step(model, batch()).logs
    shares = {k: v for k, v in logs.items() if k.startswith("grad_share_")}
    assert set(shares) == {f"grad_share_{t}" for t in ("kl", "recon", "metric_synthetic", "metric_invariant")}
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["grad_share_kl"] == 0  # the KL is on μ, σ, which z_I does not feed
    assert (shares["grad_share_recon"] > 0) == (phase == 2)  # the decoder's input is detached in phase 1
    assert shares["grad_share_metric_invariant"] > 0 and shares["grad_share_metric_synthetic"] > 0
    assert logs["sigma"] > 0 and logs["norm_z_i"] > 0 and logs["norm_z_v"] > 0 and -1 <= logs["cos_z_hat_z_i"] <= 1
    _, every_2 = make(diagnostics_every=2)
    assert ["sigma" in every_2.training_step(model, batch(i)).logs for i in range(4)] == [False, True, False, True]


def test_class_spread_against_a_hand_loop():
    g = torch.Generator().manual_seed(2)
    z, labels = torch.randn(9, 3, generator=g, dtype=torch.float64), torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3])
    squared, count = 0.0, 0
    for c in (0, 1, 2):  # class 3 has one row: no spread
        rows = [z[i] for i in range(9) if labels[i] == c]
        centre = sum(rows) / len(rows)
        unbiased = sum(float(((r - centre) ** 2).sum()) for r in rows) / (len(rows) - 1)  # E‖z − centre‖²
        squared += len(rows) * unbiased
        count += len(rows)
    assert float(class_spread(z, labels)) == pytest.approx((squared / count) ** 0.5, rel=1e-12)
    assert float(class_spread(z, torch.arange(9))) == 0.0


@pytest.mark.parametrize("how", ["unit", "class_spread", "invariant"])
def test_variance_scale_sets_the_norm_of_z_v(how):
    g = torch.Generator().manual_seed(3)
    z, z_v, labels = torch.randn(8, 4, generator=g), torch.randn(5, 8, 4, generator=g), torch.arange(4).repeat(2)
    scale = variance_scale(how, z, z_v, labels, factor=0.5)
    rms = float((scale * z_v).pow(2).sum(-1).mean().sqrt())
    expected = {
        "unit": float(z_v.pow(2).sum(-1).mean().sqrt()),
        "class_spread": 0.5 * float(class_spread(z, labels)),
        "invariant": 0.5 * float(z.pow(2).sum(-1).mean().sqrt()),
    }[how]
    assert rms == pytest.approx(expected, rel=1e-5) and not scale.requires_grad
    singletons = float(variance_scale(how, z, z_v, torch.arange(8)))  # no class spread to match: s = 1
    assert singletons == pytest.approx(1.0 if how != "invariant" else float(scale) / 0.5)


def routes(method, model):
    """Which of z_I (the model's projection head), μ/σ, the decoder and the backbone get a gradient."""
    method.training_step(model, batch()).loss.backward()
    return {
        "z_i": bool(grads(model.head)),
        "variational": bool(grads(method.variational)),
        "decoder": bool(grads(method.decoder)),
        "backbone": bool(grads(model.backbone)),
    }


ONLY = {"recon": [0.0, 1.0, 0.0, 0.0], "metric_synthetic": [0.0, 0.0, 1.0, 0.0], "kl": [1.0, 0.0, 0.0, 0.0]}


@pytest.mark.parametrize("head_input", ["shared", "detached"])
@pytest.mark.parametrize("space", ["projection", "embedding"])
@pytest.mark.parametrize("how", ["unit", "class_spread", "invariant"])
@pytest.mark.parametrize("kept", [(), ("recon",), ("metric_synthetic",), ("recon", "metric_synthetic")])
@pytest.mark.parametrize("phase", [1, 2])
@pytest.mark.parametrize("term", ["recon", "metric_synthetic", "kl"])
def test_gradient_routing_of_every_variant(term, phase, kept, how, space, head_input):
    lambdas = ONLY[term]
    model, method = make(
        phase1_epochs=2, phase1_lambdas=lambdas, phase2_lambdas=lambdas, diagnostics_every=0,
        variance_scale=how, synthesis_space=space, invariant_terms=list(kept), variational_input=head_input,
    )  # fmt: skip
    method.epoch = 0 if phase == 1 else 2
    got = routes(method, model)
    into_z_i = term in kept and (term != "recon" or phase == 2)
    reaches_head = term != "recon" or phase == 2  # the KL and L_m(ẑ) train μ, σ in both phases
    assert got["z_i"] == into_z_i and got["variational"] == reaches_head
    through_head = reaches_head and head_input == "shared"  # μ, σ are computed from the backbone's features
    assert got["backbone"] == (into_z_i or through_head)
    assert got["decoder"] == (term == "recon")


def test_the_variants_are_recorded_and_logged():
    model, method = make(variance_scale="class_spread", synthesis_space="embedding", diagnostics_every=1)
    logs = method.training_step(model, batch()).logs
    assert logs["variance_scale"] > 0 and logs["class_spread"] > 0
    assert logs["norm_z_v"] == pytest.approx(logs["class_spread"], rel=0.1)  # mean norm vs RMS: z_V at the class spread
    summary = method.summary()
    assert summary["variance_scale"] == "class_spread" and summary["synthesis_space"] == "embedding"
    assert summary["invariant_terms"] == ["recon", "metric_synthetic"]


def test_bad_parameters_name_the_key():
    loss = build_loss("triplet", {})
    with pytest.raises(ConfigError, match="method.phase1_lambdas"):
        DVMLMethod(loss, 16, DIM, 4, phase1_lambdas=[1, 1, 1])
    with pytest.raises(ConfigError, match="method.num_samples"):
        DVMLMethod(loss, 16, DIM, 4, num_samples=0)
    with pytest.raises(ConfigError, match="method.variance_scale'.*class_spread"):
        DVMLMethod(loss, 16, DIM, 4, variance_scale="spread")
    with pytest.raises(ConfigError, match="method.variance_scale_factor"):
        DVMLMethod(loss, 16, DIM, 4, variance_scale_factor=0)
    with pytest.raises(ConfigError, match="method.synthesis_space"):
        DVMLMethod(loss, 16, DIM, 4, synthesis_space="normalized")
    with pytest.raises(ConfigError, match="method.invariant_terms"):
        DVMLMethod(loss, 16, DIM, 4, invariant_terms=["kl"])
    with pytest.raises(ConfigError, match="method.variational_input"):
        DVMLMethod(loss, 16, DIM, 4, variational_input="frozen")


def test_the_phase_length_is_derived_from_the_epochs():
    loss = build_loss("triplet", {})
    assert DVMLMethod(loss, 16, DIM, epochs=8).phase1_epochs == 2  # a quarter of the run
    assert DVMLMethod(loss, 16, DIM, epochs=8, phase1_epochs=5).phase1_epochs == 5


DVML = [
    "trainer.accelerator=cpu",
    "trainer.progress_bar=false",
    "method={name: dvml, num_samples: 4, phase1_epochs: 1, diagnostics_every: 2}",
    "trainer.log_every=2",
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
    with open(tmp_path / "a" / "logs" / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    logged = [r for r in rows if r.get("train/sigma")]  # the branch's state is in the run's logs
    assert len(logged) == 4 and all(r["train/cos_z_hat_z_i"] and r["train/variance_scale"] for r in logged)
    assert {f"train/grad_share_{t}" for t in ("kl", "recon", "metric_synthetic", "metric_invariant")} <= set(rows[0])
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
    assert state["method_extra"] == {"epoch": 1, "steps": 6}
    resumed = Trainer(load_config(QUICKSTART, DVML), tmp_path / "b", resume=True).fit()
    wa = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    wb = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert all(torch.equal(wa["model"][k], wb["model"][k]) for k in wa["model"])
    assert all(torch.equal(wa["method"][k], wb["method"][k]) for k in wa["method"])
    # the epoch's mean train loss of a run resumed mid-epoch covers only its own steps
    assert [h["metrics"] for h in resumed["history"]] == [h["metrics"] for h in straight["history"]]
