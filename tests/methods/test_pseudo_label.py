"""k-means pseudo-label baseline: fixed-length P×K batches of pseudo-classes, no training label read."""

import numpy as np
import pytest

from dmlkit.config import load_config
from dmlkit.errors import ConfigError
from dmlkit.losses import build_loss
from dmlkit.methods.pseudo_label import PseudoLabelMethod, PseudoLabelSampler
from dmlkit.training.checkpoint import load_checkpoint
from dmlkit.training.trainer import Trainer
from paths import QUICKSTART


def test_sampler_has_a_fixed_length_and_pk_batches_of_the_pseudo_classes():
    labels = np.repeat(np.arange(6), 5)  # 6 pseudo-classes x 5
    sampler = PseudoLabelSampler(30, classes_per_batch=2, samples_per_class=3, seed=4)
    sampler.set_labels(labels)
    assert len(sampler) == 30 // 6
    batches = list(sampler)
    assert len(batches) == len(sampler)  # more than one P×K epoch fits in: batches come from several
    for batch in batches:
        classes, counts = np.unique(labels[batch], return_counts=True)
        assert len(classes) == 2 and (counts == 3).all()
    assert batches == list(sampler)
    sampler.set_epoch(1)
    assert batches != list(sampler)
    other = PseudoLabelSampler(30, 2, 3, seed=4)
    other.load_state_dict(sampler.state_dict())
    assert list(other) == list(sampler) and np.array_equal(other.labels, labels)
    with pytest.raises(ValueError):  # one usable pseudo-class: no batch of 2 classes
        PseudoLabelSampler(30, 2, 3).set_labels(np.r_[np.zeros(29, int), 1])
    with pytest.raises(RuntimeError, match="set_labels"):
        list(PseudoLabelSampler(30, 2, 3))


def test_bad_parameters_name_the_key():
    loss = build_loss("contrastive", {})
    with pytest.raises(ConfigError, match="method.clusters"):
        PseudoLabelMethod(loss, clusters=1)
    with pytest.raises(ConfigError, match="method.kmeans_backend"):
        PseudoLabelMethod(loss, kmeans_backend="scipy")


def test_trains_on_pseudo_labels_in_the_trainer(tmp_path, monkeypatch):
    installed = []
    original = PseudoLabelSampler.set_labels

    def spy(self, labels):
        installed.append(np.asarray(labels).copy())
        original(self, labels)

    monkeypatch.setattr(PseudoLabelSampler, "set_labels", spy)
    cfg = load_config(
        QUICKSTART,
        [
            "trainer.accelerator=cpu",
            "trainer.progress_bar=false",
            "method={name: pseudo_label, clusters: 10, classes_per_batch: 4, samples_per_class: 4}",
            "loss={name: triplet2_dws}",
            "trainer.epochs=2",
            "trainer.max_steps_per_epoch=3",
            "eval.metrics=[recall]",
            "eval.recall_at=[1]",
            "eval.untrained=false",
        ],
    )
    metrics = Trainer(cfg, tmp_path / "run").fit()
    assert metrics["status"] == "completed" and "recall@1" in metrics["test"]
    assert len(installed) == 2  # re-clustered before each epoch
    assert all(len(np.unique(labels)) == 10 for labels in installed)
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert np.array_equal(state["sampler"]["labels"], installed[-1])  # a resume keeps the pseudo-labels
