"""The command line: train, eval, embed, datasets, and its error messages."""

import json

import numpy as np
import pytest

from dmlkit.cli.main import main
from paths import QUICKSTART

TRAIN = [
    "--set",
    "trainer.epochs=1",
    "--set",
    "trainer.max_steps_per_epoch=2",
    "--set",
    "trainer.progress_bar=false",
    "--set",
    "eval.metrics=[recall]",
    "--set",
    "eval.untrained=false",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", QUICKSTART, "--run-dir", str(path), *TRAIN]) == 0
    return path


def test_train_writes_run_dir(run_dir, capsys):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and "recall@1" in metrics["test"]


def test_train_refuses_to_overwrite(run_dir, capsys):
    assert main(["train", QUICKSTART, "--run-dir", str(run_dir), *TRAIN]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_resume_rejects_changed_config(run_dir, capsys):
    args = ["train", QUICKSTART, "--run-dir", str(run_dir), *TRAIN, "--resume", "--set", "loss.margin=0.5"]
    assert main(args) == 2
    assert "loss.margin" in capsys.readouterr().err


def test_default_run_dir_is_never_reused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "q.yaml").write_text("trainer: {accelerator: cpu}\n")
    for _ in range(2):
        assert main(["train", "configs/q.yaml", *TRAIN]) == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["q", "q-1"]


def test_eval_prints_metrics(run_dir, capsys):
    assert main(["eval", str(run_dir), "--recall-at", "1", "5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["metrics"]) >= {"recall@1", "recall@5"}
    stored = json.loads((run_dir / "metrics.json").read_text())["test"]["recall@1"]
    assert out["metrics"]["recall@1"] == pytest.approx(stored)


def test_embed_writes_npz(run_dir, tmp_path, capsys):
    out = tmp_path / "emb.npz"
    assert main(["embed", str(run_dir), "--split", "train", "-o", str(out)]) == 0
    data = np.load(out)
    assert data["embeddings"].shape[0] == len(data["labels"]) == len(data["paths"])
    assert set(np.unique(data["labels"])) == {0, 1, 2, 3, 4}


def test_embed_a_plain_folder(run_dir, tmp_path, capsys):
    from PIL import Image

    for cls in ("cats", "dogs"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for j in range(2):
            Image.fromarray(np.full((9, 9), 40 * j, dtype=np.uint8)).save(tmp_path / "imgs" / cls / f"{j}.png")
    out = tmp_path / "folder.npz"
    assert main(["embed", str(run_dir), "--folder", str(tmp_path / "imgs"), "-o", str(out)]) == 0
    data = np.load(out)
    assert data["embeddings"].shape == (4, 32) and data["class_names"].tolist() == ["cats", "dogs"]
    assert data["paths"][0].endswith("cats/0.png")
    assert main(["embed", str(run_dir), "--folder", str(tmp_path / "nothing"), "-o", str(out)]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_eval_missing_run_is_clear(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "checkpoints/last.pt" in capsys.readouterr().err


def test_bad_override_is_clear(capsys):
    assert main(["train", QUICKSTART, "--set", "trainer.epochz=1"]) == 2
    assert "trainer.epochz" in capsys.readouterr().err


def test_datasets_lists_layouts(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("digits", "mnist", "omniglot", "cub200", "cars196", "sop", "inshop", "folder", "csv"):
        assert f"{name}:" in out
    assert "Ebay_train.txt" in out and "cars_annos.mat" in out


@pytest.mark.slow
def test_two_process_ddp_on_cpu_writes_one_run(tmp_path):
    """``trainer.devices=2``: Lightning re-launches the command; every process must use the first's run dir."""
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "dmlkit", "train", QUICKSTART, *TRAIN, "--set", f"output_dir={tmp_path / 'runs'}"]
    cmd += ["--set", "trainer.accelerator=cpu", "--set", "trainer.devices=2", "--set", "trainer.strategy=ddp"]
    cmd += ["--set", "data.classes_per_batch=2"]  # per process: the batch of a step holds 4 of the 5 classes
    env = {k: v for k, v in os.environ.items() if k not in ("DMLKIT_RUN_DIR", "WORLD_SIZE", "LOCAL_RANK", "RANK")}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["quickstart"]
    metrics = json.loads((tmp_path / "runs" / "quickstart" / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert done.stdout.count("run directory:") == 1  # the summary comes from rank 0 only
    assert "2 process(es), each embedding 1/2 of every batch, the loss on the whole batch" in done.stdout


@pytest.mark.slow
def test_torchrun_launches_the_cli_on_two_processes(tmp_path):
    """The multi-node recipe of docs/distributed.md on one node: torchrun starts the processes,
    dmlkit joins them (Fabric reads torchrun's environment) into the run directory given."""
    import os
    import subprocess
    import sys

    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "dmlkit", "train", QUICKSTART, *TRAIN, "--run-dir", str(run_dir)]
    cmd += ["--set", "trainer.accelerator=cpu", "--set", "trainer.devices=2", "--set", "trainer.strategy=ddp"]
    cmd += ["--set", "data.classes_per_batch=2"]
    env = {k: v for k, v in os.environ.items() if k not in ("DMLKIT_RUN_DIR", "WORLD_SIZE", "LOCAL_RANK", "RANK")}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env={**env, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "completed"
    assert json.loads((run_dir / "env.json").read_text())["world_size"] == 2
    assert done.stdout.count("run directory:") == 1


@pytest.mark.parametrize("launcher", ["WORLD_SIZE", "SLURM_NTASKS"])  # torchrun, srun
def test_external_launcher_needs_run_dir(monkeypatch, capsys, launcher):
    monkeypatch.setenv(launcher, "2")
    monkeypatch.delenv("DMLKIT_RUN_DIR", raising=False)
    assert main(["train", QUICKSTART, *TRAIN]) == 2
    assert f"--run-dir is required when the processes are started by an external launcher ({launcher}=2" in (
        capsys.readouterr().err
    )
