"""``dmlkit train`` refuses a bad config with a message naming the key, and leaves no run directory."""

import importlib.util

import pytest
import torch

from dmlkit.cli.main import main
from paths import QUICKSTART

OWN = ["loss=null", "data.classes_per_batch=null", "data.samples_per_class=null"]


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        # trainer.* by value, before any process or directory
        (["trainer.precision=fp17"], "trainer.precision"),
        (["trainer.accelerator=gpux"], "trainer.accelerator"),
        (["trainer.devices=0"], "trainer.devices"),
        (["trainer.strategy=fastest"], "trainer.strategy"),
        (["trainer.num_nodes=0"], "trainer.num_nodes"),
        # sections the method does not use
        (["method={name: magnet}", *OWN[1:]], "config section 'loss'"),
        (["method={name: pl_manifold}", "loss=null"], "data.classes_per_batch"),
        # values the assembly injects
        (["method={name: intra_batch, num_classes: 7}", "loss=null"], "method.num_classes"),
        (["method={name: dvml, embedding_dim: 7}"], "method.embedding_dim"),
        (["loss={name: proxy_anchor, num_classes: 7}"], "loss.num_classes"),
        # typos found before the dataset and the backbone are built
        (["loss.alpah=3"], "loss.alpah"),
        (["method={name: magnet, alpah: 3}", *OWN], "method.alpah"),
        (["eval.best_metric=recal@1"], "eval.best_metric"),
        # a root without a dataset: not the bundled digits in its place
        (["data.dataset=null", "data.root=/my/images"], "data.dataset"),
        (["data.root=/my/images"], "data.root"),  # the quick-start names the bundled digits
    ],
)
def test_refused_with_the_key_named_and_no_run_directory(tmp_path, capsys, overrides, named):
    args = ["train", QUICKSTART, "--set", f"output_dir={tmp_path / 'runs'}"]
    for override in overrides:
        args += ["--set", override]
    assert main(args) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_an_accelerator_this_machine_lacks_is_refused_before_the_run_directory(tmp_path, capsys):
    args = ["train", QUICKSTART, "--set", f"output_dir={tmp_path / 'runs'}", "--set", "trainer.accelerator=cuda"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "trainer.accelerator='cuda'" in err and "not available" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(importlib.util.find_spec("torch_xla") is not None, reason="needs a machine without torch_xla")
def test_a_tpu_without_its_library_is_a_message(tmp_path, capsys):
    args = ["train", QUICKSTART, "--set", f"output_dir={tmp_path / 'runs'}", "--set", "trainer.accelerator=tpu"]
    assert main(args) == 2
    assert "trainer.accelerator='tpu'" in capsys.readouterr().err and not (tmp_path / "runs").exists()


def test_a_missing_dataset_leaves_no_run_directory(tmp_path, capsys):
    """The data is read when the run is assembled, before its directory is created."""
    args = ["train", QUICKSTART, "--set", f"output_dir={tmp_path / 'runs'}", "--set", "data.dataset=omniglot"]
    args += ["--set", f"data.root={tmp_path / 'nowhere'}", "--set", "data.image_size=28"]
    assert main(args) == 2
    assert "nowhere" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
