"""k-means pseudo-label baseline: fixed-length P×K batches of pseudo-classes, no training label read, resume."""

import numpy as np
import pytest

from dmlkit.config import load_config
from dmlkit.data.samplers import EpochBatchSampler
from dmlkit.errors import ConfigError
from dmlkit.losses import build_loss
from dmlkit.methods import METHODS
from dmlkit.methods.pseudo_label import PseudoLabelBatches, PseudoLabelMethod
from dmlkit.methods.pseudo_label import method as method_module
from dmlkit.training.checkpoint import load_checkpoint
from dmlkit.training.trainer import Trainer
from hidden_labels import hide_training_labels
from paths import QUICKSTART

RUN = [
    "trainer.accelerator=cpu",
    "trainer.progress_bar=false",
    "method={name: pseudo_label, clusters: 10, classes_per_batch: 4, samples_per_class: 4}",
    "loss={name: triplet2_dws}",
    "data.classes_per_batch=null",
    "data.samples_per_class=null",
    "trainer.epochs=2",
    "trainer.max_steps_per_epoch=3",
    "eval.metrics=[recall]",
    "eval.recall_at=[1]",
    "eval.untrained=false",
]


def test_sampler_has_a_fixed_length_and_yields_pk_batches_of_the_pseudo_classes():
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(8), 6))  # 8 pseudo-classes × 6
    sampler = PseudoLabelBatches(48, classes_per_batch=3, samples_per_class=2, seed=5)
    assert len(sampler) == 48 // 6
    sampler.set_labels(labels)
    batches = list(sampler.batches(0))
    assert len(batches) == len(sampler)
    for batch in batches:
        classes, counts = np.unique(labels[batch], return_counts=True)
        assert len(classes) == 3 and (counts == 2).all() and len(set(batch)) == 6
    assert batches == list(sampler.batches(0))  # deterministic per (seed, epoch)
    assert list(sampler.batches(1)) != batches
    sampler.set_labels(np.repeat(np.arange(16), 3))  # new clusters: same number of batches
    assert len(list(sampler.batches(0))) == len(sampler) == 8


def test_sampler_cycles_leaves_singletons_out_and_shares_batches_across_ranks():
    labels = np.r_[np.repeat(np.arange(3), 4), 3, 4]  # 3 pseudo-classes × 4, two singletons
    sampler = PseudoLabelBatches(14, classes_per_batch=2, samples_per_class=2, seed=1)
    sampler.set_labels(labels)
    assert sampler.num_pseudo_classes == 3 and len(sampler) == 3  # one P×K epoch has 3 batches
    sampler = PseudoLabelBatches(40, classes_per_batch=2, samples_per_class=2, seed=1)
    sampler.set_labels(np.r_[np.repeat(np.arange(3), 4), np.arange(3, 31)])  # 28 singletons
    batches = list(sampler.batches(0))
    assert len(batches) == len(sampler) == 10  # several P×K epochs of 3 batches fill the fixed length
    assert all(max(batch) < 12 for batch in batches)  # singleton clusters never enter a batch
    shares = [list(EpochBatchSampler(sampler, rank=r, world_size=2)) for r in range(2)]
    assert [len(s) for s in shares] == [5, 5] and shares[0] + shares[1] != [] and shares[0] != shares[1]
    assert sorted(map(tuple, shares[0] + shares[1])) == sorted(map(tuple, batches))
    with pytest.raises(ConfigError, match="method.classes_per_batch"):  # one cluster with two images
        PseudoLabelBatches(10, 2, 2).set_labels(np.r_[0, 0, np.arange(1, 9)])
    with pytest.raises(ValueError, match="one per training example"):
        PseudoLabelBatches(10, 2, 2).set_labels(np.zeros(9, dtype=int))
    with pytest.raises(RuntimeError, match="set_labels"):
        list(PseudoLabelBatches(10, 2, 2).batches(0))


def test_bad_parameters_name_the_key():
    loss = build_loss("contrastive", {})
    for kwargs, key in (
        ({"clusters": 1}, "method.clusters"),
        ({"classes_per_batch": 1}, "method.classes_per_batch"),
        ({"samples_per_class": 1}, "method.samples_per_class"),
        ({"clusters": 8, "classes_per_batch": 16}, "method.classes_per_batch"),
        ({"kmeans_backend": "scipy"}, "method.kmeans_backend"),
        ({"clusters": 50}, "method.clusters': 50 exceeds the 20 training images"),
    ):
        with pytest.raises(ConfigError, match=key):
            PseudoLabelMethod(loss, num_examples=20, **kwargs)
    assert "pseudo_label" in METHODS and not PseudoLabelMethod.uses_labels


@pytest.mark.slow
def test_kmeans_pseudo_labels_are_installed_before_the_first_batch_and_no_label_is_read(tmp_path, monkeypatch):
    hide_training_labels(monkeypatch)
    clusterings = []
    real_kmeans = method_module.kmeans

    def kmeans(embeddings, n_clusters, seed, backend):
        clusterings.append((len(embeddings), n_clusters, seed, real_kmeans(embeddings, n_clusters, seed, backend)))
        return clusterings[-1][-1]

    monkeypatch.setattr(method_module, "kmeans", kmeans)
    steps = []
    step = PseudoLabelMethod.training_step

    def spy(self, model, batch):
        labels = self.batch_source.labels[batch["index"].numpy()]
        steps.append((set(batch), len(clusterings), np.unique(labels, return_counts=True)[1]))
        assert np.array_equal(self.pseudo_labels, clusterings[-1][-1])  # the latest k-means assignments
        return step(self, model, batch)

    monkeypatch.setattr(PseudoLabelMethod, "training_step", spy)
    metrics = Trainer(load_config(QUICKSTART, RUN), tmp_path / "run").fit()
    assert metrics["status"] == "completed" and "recall@1" in metrics["test"]
    assert [(n, k, seed) for n, k, seed, _ in clusterings] == [(clusterings[0][0], 10, 0), (clusterings[0][0], 10, 1)]
    assert [count for _, count, _ in steps] == [1, 1, 1, 2, 2, 2]  # clustered before each epoch's first batch
    assert all(keys == {"image", "index"} for keys, _, _ in steps)
    assert all(len(sizes) == 4 and (sizes == 4).all() for _, _, sizes in steps)  # P × K pseudo-classes
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert np.array_equal(state["method_extra"]["pseudo_labels"], clusterings[-1][-1])
    assert "sampler" not in state  # checkpointed once, as the method's state


@pytest.mark.slow
def test_resume_mid_epoch_keeps_the_pseudo_labels_and_the_batches(tmp_path, monkeypatch):
    run = [*RUN, "trainer.checkpoint_every_steps=2", "trainer.max_steps_per_epoch=4"]
    seen = []
    step, after_step = PseudoLabelMethod.training_step, PseudoLabelMethod.after_step

    def spy(self, model, batch):
        seen.append(batch["index"].tolist())
        return step(self, model, batch)

    monkeypatch.setattr(PseudoLabelMethod, "training_step", spy)

    def crash(self, model, step):
        after_step(self, model, step)
        if step == 6:  # the 3rd step of epoch 2; the last checkpoint was written after its 2nd
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(PseudoLabelMethod, "after_step", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        Trainer(load_config(QUICKSTART, run), tmp_path / "run").fit()
    saved = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert saved["batch_in_epoch"] == 2 and len(seen) == 7
    monkeypatch.setattr(PseudoLabelMethod, "after_step", after_step)
    clustered = []
    start = PseudoLabelMethod.on_epoch_start
    monkeypatch.setattr(PseudoLabelMethod, "on_epoch_start", lambda s, e, m: clustered.append(e) or start(s, e, m))
    assert Trainer(load_config(QUICKSTART, run), tmp_path / "run", resume=True).fit()["status"] == "completed"
    assert clustered == []  # the rest of epoch 2 trained on the checkpointed pseudo-labels
    labels = saved["method_extra"]["pseudo_labels"]
    uninterrupted = PseudoLabelBatches(len(labels), 4, 4, seed=0)
    uninterrupted.set_labels(labels)
    assert seen[4:6] + seen[7:] == list(uninterrupted.batches(1))[:4]  # epoch 2's batches, as without the crash
