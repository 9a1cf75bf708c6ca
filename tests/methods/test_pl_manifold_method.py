"""PL-Manifold training: kNN batches, EMA teacher, no training label read, exact resume, diagnostics."""

import numpy as np
import pytest
import torch

import dmlkit.methods.pl_manifold.method  # noqa: F401  (registers pl_manifold)
from dmlkit.api import load_run
from dmlkit.config import load_config
from dmlkit.errors import ConfigError
from dmlkit.methods.pl_manifold.diagnostics_run import run_diagnostics
from dmlkit.methods.pl_manifold.method import PLManifoldMethod
from dmlkit.methods.pl_manifold.sampler import KNNBatches
from dmlkit.models import build_model
from dmlkit.training.checkpoint import load_checkpoint
from dmlkit.training.trainer import Trainer
from hidden_labels import hide_training_labels
from paths import QUICKSTART

RUN = [
    "trainer.accelerator=cpu",
    "trainer.progress_bar=false",
    "method={name: pl_manifold, queries: 6, neighbours: 4, views: 2, num_proxies: 8, diagnostic_batches: 3}",
    "loss=null",  # the method has its own loss (a loss section is an error)
    "data.classes_per_batch=null",  # and its own batches
    "data.samples_per_class=null",
    "optimizer.name=adamw",
    "trainer.max_steps_per_epoch=3",
    "eval.metrics=[recall]",
    "eval.recall_at=[1]",
    "eval.untrained=false",
    "scheduler.name=constant",
]


def test_knn_sampler_batches_are_queries_with_their_neighbours():
    knn = np.array([[(i + 1) % 50, (i + 2) % 50, (i + 3) % 50] for i in range(50)])
    sampler = KNNBatches(50, queries=4, neighbours=3, views=2, seed=1)
    sampler.set_neighbours(knn)
    batches = list(sampler.batches(2))
    assert len(batches) == len(sampler) == 50 // 12
    for batch in batches:
        rows = np.array(batch).reshape(4, 3, 2)
        assert (rows[..., 0] == rows[..., 1]).all()  # every image in two views
        q = rows[:, 0, 0]
        assert (rows[:, 1:, 0] == knn[q][:, :2]).all()  # the query's nearest, nearest first
    queries = [b[0] for b in batches]
    assert len(set(queries)) == len(queries)
    assert batches == list(sampler.batches(2))  # deterministic per (seed, epoch)
    assert batches != list(sampler.batches(3))
    other = KNNBatches(50, queries=4, neighbours=3, views=2, seed=1)
    other.load_state_dict(sampler.state_dict())
    assert list(other.batches(3)) == list(sampler.batches(3))
    with pytest.raises(ValueError, match="neighbour lists"):
        sampler.set_neighbours(knn[:, :1])


@pytest.mark.slow
def test_trains_without_ever_reading_a_training_label(tmp_path, monkeypatch):
    hide_training_labels(monkeypatch)
    seen = []
    step = PLManifoldMethod.training_step

    def spy(self, model, batch):
        seen.append(set(batch))
        return step(self, model, batch)

    monkeypatch.setattr(PLManifoldMethod, "training_step", spy)
    metrics = Trainer(load_config(QUICKSTART, [*RUN, "trainer.epochs=2"]), tmp_path / "run").fit()
    assert metrics["status"] == "completed" and "recall@1" in metrics["test"]
    assert seen and all(keys == {"image", "index"} for keys in seen)
    diag = {k for k in metrics["test"] if k.startswith("diag_")}
    assert {"diag_pl_purity", "diag_pl_correlation", "diag_kmeans_purity", "diag_hierarchical_correlation"} <= diag
    restored = load_run(tmp_path / "run")  # built from the config, the teacher included, then loaded
    assert isinstance(restored.method, PLManifoldMethod)
    saved = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["method"]
    assert all(torch.equal(v, saved[k]) for k, v in restored.method.state_dict().items())


def test_teacher_is_an_ema_of_the_student():
    torch.manual_seed(0)
    model = build_model("small_cnn", embedding_dim=8, in_channels=1, normalize=True)
    method = PLManifoldMethod(model, embedding_dim=8, num_examples=50, momentum=0.9, num_proxies=2)
    method.train()
    assert not method.teacher.training and not any(p.requires_grad for p in method.teacher.parameters())
    assert not any(
        id(p) in {id(q) for g in method.param_groups(1e-3, 1) for q in g["params"]} for p in method.teacher.parameters()
    )
    method.after_step(model, 0)  # the first update copies the student
    before = {k: v.clone() for k, v in method.teacher.module.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    method.after_step(model, 1)
    for name, p in model.named_parameters():
        assert torch.allclose(method.teacher.module.get_parameter(name), 0.9 * before[name] + 0.1 * p, atol=1e-6)


@pytest.mark.slow
def test_resume_keeps_teacher_proxies_and_neighbourhoods(tmp_path):
    same = [*RUN, "trainer.eval_every=1", "method.diagnostics=every"]  # the two runs evaluate alike
    cfg2 = load_config(QUICKSTART, [*same, "trainer.epochs=2"])
    straight = Trainer(cfg2, tmp_path / "a").fit()
    Trainer(load_config(QUICKSTART, [*same, "trainer.epochs=1"]), tmp_path / "b").fit()
    first = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert first["method_extra"]["batches"]["knn"] is not None  # the neighbourhoods are saved
    assert any(k.startswith("teacher.") for k in first["method"]) and "proxies.locations" in first["method"]
    resumed = Trainer(cfg2, tmp_path / "b", resume=True).fit()
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    for part in ("model", "method"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    assert np.array_equal(a["method_extra"]["batches"]["knn"], b["method_extra"]["batches"]["knn"])
    assert resumed["test"]["recall@1"] == straight["test"]["recall@1"]


def test_diagnostics_separate_clean_clusters():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 8)) * 10
    labels = np.repeat(np.arange(6), 30)
    x = torch.tensor(centres[labels] + rng.normal(size=(180, 8)) * 0.1, dtype=torch.float32)
    out = run_diagnostics(x, labels, batches=5, queries=4, neighbours=5, piece_args={"rank": 1, "max_size": 5})
    assert out["diag_pl_purity"] == pytest.approx(1.0)  # neighbourhoods never leave a tight cluster
    assert out["diag_kmeans_purity"] == pytest.approx(1.0) and out["diag_hierarchical_purity"] == pytest.approx(1.0)
    shuffled = run_diagnostics(x, rng.permutation(labels), batches=5, queries=4, neighbours=5)
    assert shuffled["diag_pl_purity"] < 0.5


def test_bad_parameters_name_the_key():
    model = build_model("small_cnn", embedding_dim=8, in_channels=1)
    for kwargs, key in (
        ({"rank": 3, "max_size": 3}, "method.max_size"),
        ({"momentum": 1.0}, "method.momentum"),
        ({"residual_scale": "global"}, "method.residual_scale"),
        ({"diagnostics": "sometimes"}, "method.diagnostics"),
        ({"distance_scale": "minmax"}, "method.distance_scale"),
    ):
        with pytest.raises(ConfigError, match=key):
            PLManifoldMethod(model, embedding_dim=8, num_examples=50, **kwargs)


@pytest.mark.slow
def test_resume_mid_epoch_restores_the_neighbourhoods_without_recomputing(tmp_path, monkeypatch):
    extra = [*RUN, "trainer.epochs=2", "trainer.checkpoint_every_steps=2", "trainer.max_steps_per_epoch=4"]
    extra.append("method.diagnostics=never")
    Trainer(load_config(QUICKSTART, extra), tmp_path / "a").fit()
    original = PLManifoldMethod.after_step

    def crash(self, model, step):
        original(self, model, step)
        if step == 6:  # the 7th step, mid second epoch: the last checkpoint was written after the 6th
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(PLManifoldMethod, "after_step", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        Trainer(load_config(QUICKSTART, extra), tmp_path / "b").fit()
    monkeypatch.setattr(PLManifoldMethod, "after_step", original)
    assert load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["batch_in_epoch"] == 2
    refreshes = []
    start = PLManifoldMethod.on_epoch_start
    monkeypatch.setattr(PLManifoldMethod, "on_epoch_start", lambda s, e, m: refreshes.append(e) or start(s, e, m))
    Trainer(load_config(QUICKSTART, extra), tmp_path / "b", resume=True).fit()
    assert refreshes == []  # the rest of epoch 2 used the saved neighbour lists
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    for part in ("model", "method"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
