"""Magnet method: cluster index, neighbourhood sampler, classifier, and the method in the trainer."""

import types

import numpy as np
import pytest
import torch

from dmlkit.config import load_config
from dmlkit.errors import ConfigError
from dmlkit.methods.magnet import (
    ClusterIndex,
    MagnetMethod,
    NeighbourhoodBatches,
    build_cluster_index,
    cluster_class_scores,
    cluster_classify,
)
from dmlkit.methods.magnet import method as magnet_module
from dmlkit.training.checkpoint import load_checkpoint
from dmlkit.training.trainer import Trainer
from paths import QUICKSTART


# ----------------------------------------------------------------------------- cluster index
def blobs(seed=0, per=30, classes=3, modes=2):
    """Each class made of ``modes`` well separated blobs."""
    rng = np.random.default_rng(seed)
    x, y = [], []
    for c in range(classes):
        for m in range(modes):
            centre = np.array([10.0 * c, 10.0 * m])
            x.append(centre + 0.1 * rng.standard_normal((per, 2)))
            y += [c] * per
    return np.concatenate(x).astype(np.float32), np.array(y)


def test_index_clusters_each_class_separately():
    x, y = blobs()
    index = build_cluster_index(x, y, k=2)
    assert index.num_clusters == 6
    assert index.cluster_class.tolist() == [0, 0, 1, 1, 2, 2]
    for c, members in enumerate(index.members()):
        assert (y[members] == index.cluster_class[c]).all()
        assert len(members) == 30  # the blobs are recovered exactly
        np.testing.assert_allclose(index.centroids[c], x[members].mean(0), rtol=1e-5)


def test_k1_is_the_class_mean():
    x, y = blobs()
    index = build_cluster_index(x, y, k=1)
    assert index.num_clusters == 3
    np.testing.assert_array_equal(index.assignments, y)
    for c in range(3):
        np.testing.assert_allclose(index.centroids[c], x[y == c].mean(0), rtol=1e-5)


def test_small_classes_and_duplicates_leave_no_empty_cluster():
    x = np.array([[0.0, 0.0]] * 6 + [[5.0, 5.0]] * 2 + [[9.0, 9.0]], dtype=np.float32)
    y = np.array([0] * 6 + [1] * 2 + [2])
    index = build_cluster_index(x, y, k=3)
    counts = np.bincount(index.assignments, minlength=index.num_clusters)
    assert index.cluster_class.tolist() == [0, 0, 0, 1, 1, 2]  # min(K, class size) clusters
    assert (counts > 0).all()


def test_nearest_impostors_are_other_classes_nearest_first():
    centroids = np.array([[0.0], [0.5], [3.0], [1.0], [2.0], [1.0]], dtype=np.float32)
    index = ClusterIndex(centroids, np.array([0, 0, 1, 1, 2, 3]), np.arange(6))
    assert index.nearest_impostors(0, 3).tolist() == [3, 5, 4]  # tie at distance 1: lower id first
    assert index.nearest_impostors(0, 10).tolist() == [3, 5, 4, 2]


# ----------------------------------------------------------------------------- sampler
def sampler_for(x, y, k=2, m=3, d=4, seed=0):
    index = build_cluster_index(x, y, k=k)
    s = NeighbourhoodBatches(len(y), m, d, seed=seed)
    s.set_index(index)
    return s, index


def test_batches_are_m_clusters_of_d_with_nearest_impostors():
    x, y = blobs()
    s, index = sampler_for(x, y)
    assert len(s) == -(-len(y) // 12)
    for b in range(20):
        batch, clusters = s.draw(0, b)
        assert len(batch) == 12 and len(clusters) == 3
        groups = np.asarray(batch).reshape(3, 4)
        for group, c in zip(groups, clusters, strict=True):
            assert (index.assignments[group] == c).all()
            assert len(set(group.tolist())) == 4  # 30 members >= D: without replacement
        seed_class = index.cluster_class[clusters[0]]
        assert (index.cluster_class[clusters[1:]] != seed_class).all()
        np.testing.assert_array_equal(clusters[1:], index.nearest_impostors(clusters[0], 2))


def test_small_cluster_is_drawn_with_replacement():
    x = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0], [5.2, 5.0], [5.3, 5.0]], dtype=np.float32)
    y = np.array([0, 0, 1, 1, 1, 1])
    s, _ = sampler_for(x, y, k=1, m=2, d=4)
    batch, clusters = s.draw(0, 0)
    groups = np.asarray(batch).reshape(2, 4)
    small = groups[list(clusters).index(0)]
    assert set(small.tolist()) == {0, 1}  # 2 members for D = 4


def test_seed_clusters_follow_their_mean_loss():
    x, y = blobs()
    s, index = sampler_for(x, y)
    np.testing.assert_allclose(s.cluster_weights(), np.full(6, 1 / 6))  # nothing seen: uniform
    members = index.members()
    s.record_losses(members[0], np.full(len(members[0]), 3.0))
    s.record_losses(members[1][:5], np.full(5, 1.0))
    w = s.cluster_weights()
    # clusters never seen get the mean of the seen ones: (3 + 1) / 2
    np.testing.assert_allclose(w, np.array([3.0, 1.0, 2, 2, 2, 2]) / 12)
    seeds = np.bincount([s.draw(0, b)[1][0] for b in range(3000)], minlength=6) / 3000
    np.testing.assert_allclose(seeds, w, atol=0.03)


def test_draws_are_reproducible_and_depend_on_epoch_and_batch():
    x, y = blobs()
    a, _ = sampler_for(x, y)
    b, _ = sampler_for(x, y)
    assert a.draw(1, 5)[0] == b.draw(1, 5)[0]
    assert list(a.batches(1)) == list(b.batches(1)) and len(list(a.batches(1))) == len(a)
    assert any(a.draw(1, i)[0] != a.draw(2, i)[0] for i in range(5))
    assert a.draw(1, 0)[0] != a.draw(1, 1)[0]


# ----------------------------------------------------------------------------- classifier
def test_classifier_matches_hand_computed_case():
    centroids = np.array([[0.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    classes = np.array([0, 1, 1])
    r = torch.tensor([[1.2, 0.0]], dtype=torch.float64)
    # squared distances 1.44, 0.64, 3.24; sigma^2 = 0.5 -> weights exp(-d / 1)
    w = np.exp(-np.array([1.44, 0.64, 3.24]))
    expected = np.array([w[0], w[1] + w[2]]) / w.sum()
    np.testing.assert_allclose(cluster_class_scores(r, centroids, classes, 0.5, neighbours=3)[0].numpy(), expected)
    # with L = 2 only the two nearest (clusters 1 and 0) vote
    w2 = np.exp(-np.array([1.44, 0.64]))
    np.testing.assert_allclose(
        cluster_class_scores(r, centroids, classes, 0.5, neighbours=2)[0].numpy(), w2 / w2.sum(), rtol=1e-12
    )
    assert cluster_classify(r, centroids, classes, 0.5).tolist() == [1]


def magnet(class_names=("a", "b"), **kwargs):
    return MagnetMethod(len(class_names), class_names, num_examples=10, epochs=1, **kwargs)


def test_closed_set_accuracy_and_zero_shot_skip():
    method = magnet(clusters_per_class=1, clusters_per_batch=2, samples_per_cluster=2)
    method.index = ClusterIndex(np.array([[0.0], [10.0]], dtype=np.float32), np.array([0, 1]), np.array([0, 1]))
    emb = torch.tensor([[1.0], [9.0], [2.0]])
    # the test set lists its classes in another order: its label 0 is "b"
    test = types.SimpleNamespace(class_names=["b", "a"])
    assert method.eval_metrics(emb, np.array([1, 0, 0]), test) == {"accuracy": pytest.approx(2 / 3)}
    assert method.eval_metrics(emb, np.array([0, 1, 2]), types.SimpleNamespace(class_names=["x", "y", "z"])) == {}


def test_bad_parameters_name_the_key():
    with pytest.raises(ConfigError, match="method.clusters_per_batch"):
        magnet(clusters_per_batch=1)
    with pytest.raises(ConfigError, match="method.alpha"):
        magnet(alpha=-1)
    with pytest.raises(ConfigError, match="at least two training classes"):
        magnet(class_names=["a"])


# ----------------------------------------------------------------------------- in the trainer
MAGNET = [
    "trainer.accelerator=cpu",
    "trainer.progress_bar=false",
    "method={name: magnet, clusters_per_class: 2, clusters_per_batch: 4, samples_per_cluster: 4}",
    "loss=null",
    "data.classes_per_batch=null",
    "data.samples_per_class=null",
    "model.normalize=false",
    "eval.metrics=[recall]",
    "eval.recall_at=[1]",
    "eval.untrained=false",
    "trainer.max_steps_per_epoch=6",
]


def magnet_config(*extra):
    return load_config(QUICKSTART, [*MAGNET, *extra])


@pytest.mark.slow
def test_trains_refreshes_and_plots(tmp_path, monkeypatch):
    seen = []
    original = magnet_module.build_cluster_index

    def record(*args, **kwargs):
        index = original(*args, **kwargs)
        seen.append(index.assignments.copy())
        return index

    monkeypatch.setattr(magnet_module, "build_cluster_index", record)
    metrics = Trainer(magnet_config("trainer.epochs=2", "trainer.eval_every=1"), tmp_path / "run").fit()
    assert metrics["status"] == "completed"
    assert len(seen) == 3  # before training, after epoch 1, after epoch 2
    assert not np.array_equal(seen[0], seen[-1])  # the trained embedding regroups the examples
    for name in ("initial_distribution.png", "final_distribution.png", "loss.png"):
        assert (tmp_path / "run" / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    extra = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["method_extra"]
    assert len(extra["loss_history"]) == 12 and extra["index"]["assignments"].shape == (len(seen[0]),)


@pytest.mark.slow
def test_resume_mid_epoch_keeps_index_and_sampler_state(tmp_path, monkeypatch):
    extra = ["trainer.epochs=2", "trainer.checkpoint_every_steps=2", "method.plots=false"]
    Trainer(magnet_config(*extra), tmp_path / "a").fit()

    original = MagnetMethod.after_step

    def crash(self, model, step):
        original(self, model, step)
        if step == 8:  # epoch 2, step 3; the last checkpoint was written after step 8
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(MagnetMethod, "after_step", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        Trainer(magnet_config(*extra), tmp_path / "b").fit()
    monkeypatch.setattr(MagnetMethod, "after_step", original)
    state = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert state["global_step"] == 8 and not np.isnan(state["method_extra"]["batches"]["example_loss"]).all()
    Trainer(magnet_config(*extra), tmp_path / "b", resume=True).fit()
    wa = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    wb = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert all(torch.equal(wa["model"][k], wb["model"][k]) for k in wa["model"])
    np.testing.assert_array_equal(
        wa["method_extra"]["index"]["assignments"], wb["method_extra"]["index"]["assignments"]
    )
    np.testing.assert_array_equal(
        wa["method_extra"]["batches"]["example_loss"], wb["method_extra"]["batches"]["example_loss"]
    )


@pytest.mark.slow
def test_refresh_every_steps(tmp_path, monkeypatch):
    calls = []
    original = magnet_module.build_cluster_index
    monkeypatch.setattr(magnet_module, "build_cluster_index", lambda *a, **k: calls.append(1) or original(*a, **k))
    cfg = magnet_config("trainer.epochs=1", "method.refresh_every_steps=3", "method.refresh_every_epochs=0")
    Trainer(cfg, tmp_path / "run").fit()
    assert len(calls) == 4  # before training, after steps 3 and 6, after the last epoch
