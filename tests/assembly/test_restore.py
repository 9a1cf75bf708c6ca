"""Restored runs: the method's own metrics in ``dmlkit eval`` as in training, and checkpoints refused clearly."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

import dmlkit
from dmlkit.cli.main import main
from dmlkit.errors import DmlkitError
from dmlkit.training.checkpoint import save_checkpoint
from dmlkit.training.trainer import Trainer
from paths import QUICKSTART


@pytest.fixture(scope="module")
def closed_set(tmp_path_factory):
    """Digits 0-3 as a folder dataset whose train and test sides share their classes."""
    root = tmp_path_factory.mktemp("closed")
    digits = load_digits()
    for label in range(4):
        images = digits.images[digits.target == label][:40]
        for i, image in enumerate(images):
            split = "train" if i < 30 else "test"
            (root / split / f"d{label}").mkdir(parents=True, exist_ok=True)
            Image.fromarray((image * 15).astype(np.uint8)).save(root / split / f"d{label}" / f"{i}.png")
    return root


@pytest.mark.slow
def test_magnet_accuracy_is_reported_by_the_trainer_and_by_eval(closed_set, tmp_path, capsys):
    overrides = [
        "data.dataset=folder",
        f"data.root={closed_set}",
        "data.image_size=16",
        "data.transform={}",
        "method={name: magnet, clusters_per_class: 2, clusters_per_batch: 4, samples_per_cluster: 4}",
        "loss=null",
        "data.classes_per_batch=null",
        "data.samples_per_class=null",
        "trainer.epochs=1",
        "trainer.accelerator=cpu",
        "trainer.progress_bar=false",
        "eval.untrained=false",
    ]
    metrics = dmlkit.train(QUICKSTART, overrides, run_dir=tmp_path / "run").metrics
    assert 0 <= metrics["test"]["accuracy"] <= 1
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run")]) == 0
    cli = json.loads(capsys.readouterr().out)["metrics"]
    assert cli["accuracy"] == pytest.approx(metrics["test"]["accuracy"])


def test_a_checkpoint_of_another_format_is_refused_by_name(tmp_path):
    path = tmp_path / "old.pt"
    save_checkpoint(path, {"config": {}, "model": {}, "epoch": 1, "num_classes": 5})
    with pytest.raises(DmlkitError, match=r"old\.pt is not a dmlkit training checkpoint of format 2"):
        dmlkit.load_run(path)


def test_a_bad_device_is_named(tmp_path):
    from dmlkit.assembly.restore import _device

    assert _device("cuda:1") == ("cuda", [1]) and _device("cpu") == ("cpu", 1)
    with pytest.raises(DmlkitError, match=r"--device 'gpu0': expected cpu, cuda, cuda:N or mps"):
        _device("gpu0")


def test_a_method_may_not_create_parameters_when_bound(tmp_path, monkeypatch):
    from dmlkit.methods.metric_loss import MetricLossMethod

    def bind(self, runtime):
        self.late = torch.nn.Linear(2, 2)  # belongs in the constructor: a restored run would lack it

    monkeypatch.setattr(MetricLossMethod, "bind", bind)
    cfg = dmlkit.load_config(QUICKSTART, ["trainer.epochs=1", "trainer.progress_bar=false"])
    with pytest.raises(RuntimeError, match=r"MetricLossMethod\.bind created late\.bias, late\.weight"):
        Trainer(cfg, tmp_path / "run").fit()
    assert not (tmp_path / "run").exists()
