"""Run directories that keep their integrity: one run at a time, only empty or own directories, checkpoints
that are checked, records that survive any way out (an error, Ctrl-C, SIGTERM, kill -9)."""

import json
import signal
import subprocess
import sys
import time

import pytest

from dmlkit.cli.main import main
from dmlkit.config import load_config
from dmlkit.errors import DmlkitError
from dmlkit.training.checkpoint import load_checkpoint
from dmlkit.training.run_dir import RunDir
from dmlkit.training.run_lock import RunLock
from dmlkit.training.trainer import Trainer
from paths import QUICKSTART

QUICK = [
    "trainer.accelerator=cpu",
    "trainer.progress_bar=false",
    "eval.metrics=[recall]",
    "eval.recall_at=[1]",
    "eval.untrained=false",
    "trainer.epochs=1",
    "trainer.max_steps_per_epoch=2",
]


SETS = [arg for override in QUICK for arg in ("--set", override)]


def quick(*extra):
    return load_config(QUICKSTART, [*QUICK, *extra])


def test_a_directory_in_use_by_another_run_is_refused(tmp_path):
    in_use = r"run is in use by pid \d+ .*two runs cannot write to one directory"
    with RunLock(tmp_path / "run"), pytest.raises(DmlkitError, match=in_use):  # another process's run, to the lock
        Trainer(quick(), tmp_path / "run").fit()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == []  # nothing of the refused run
    assert Trainer(quick(), tmp_path / "run").fit()["status"] == "completed"  # free again
    assert not (tmp_path / "run" / ".lock").exists()


def test_a_lock_held_by_another_process_is_seen(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from dmlkit.training.run_lock import RunLock; "
         "RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)", str(tmp_path / "run")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DmlkitError, match=f"in use by pid {holder.pid}"):
            RunLock(tmp_path / "run").acquire()
    finally:
        holder.kill()
        holder.wait()
    RunLock(tmp_path / "run").acquire().release()  # the kernel freed the killed holder's lock


def test_only_an_empty_or_new_directory_takes_a_new_run(tmp_path, capsys):
    own = tmp_path / "mine"
    own.mkdir()
    (own / "config.yaml").write_text("my own file\n")
    (own / "notes.txt").write_text("keep me\n")
    assert main(["train", QUICKSTART, "--run-dir", str(own), *SETS]) == 2
    assert "holds files that are not a dmlkit run (config.yaml, notes.txt)" in capsys.readouterr().err
    assert (own / "config.yaml").read_text() == "my own file\n"
    failed = tmp_path / "failed"
    RunDir(failed).write_metrics({"status": "failed"})
    with pytest.raises(DmlkitError, match=r"holds the records of an earlier run \(status 'failed'"):
        Trainer(quick(), failed)


def test_a_checkpoint_from_another_run_is_refused_on_resume(tmp_path):
    Trainer(quick(), tmp_path / "a").fit()
    Trainer(quick("seed=1"), tmp_path / "b").fit()
    (tmp_path / "a" / "checkpoints" / "last.pt").write_bytes((tmp_path / "b" / "checkpoints" / "last.pt").read_bytes())
    with pytest.raises(DmlkitError, match=r"last\.pt was written by another run: its config differs .* at seed"):
        Trainer(quick("trainer.epochs=2"), tmp_path / "a", resume=True).fit()
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "another run" in metrics["error"]


def test_stale_temporary_files_are_removed_when_a_run_takes_its_directory(tmp_path):
    Trainer(quick(), tmp_path / "run").fit()
    stale = tmp_path / "run" / "checkpoints" / ".last.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    Trainer(quick("trainer.epochs=2"), tmp_path / "run", resume=True).fit()
    assert not stale.exists()


def test_metrics_json_is_valid_json_with_non_finite_values(tmp_path):
    run = RunDir(tmp_path)
    run.write_metrics({"status": "completed", "test": {"recall@1": float("nan"), "nmi": 0.5}})
    data = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert data["test"] == {"recall@1": None, "nmi": 0.5} and data["non_finite"] == ["test.recall@1"]


def test_resume_without_run_dir_takes_the_latest_unfinished_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "q.yaml").write_text(f"base: {QUICKSTART}\n")
    sets = SETS
    assert main(["train", "q.yaml", *sets]) == 0  # runs/q, completed
    assert main(["train", "q.yaml", *sets]) == 0  # runs/q-1 ...
    RunDir(tmp_path / "runs" / "q-1").write_metrics({"status": "killed-by-signal"})  # ... as if it had been killed
    capsys.readouterr()
    assert main(["train", "q.yaml", *sets, "--set", "trainer.epochs=2", "--resume"]) == 0
    assert "resuming runs/q-1" in capsys.readouterr().out
    assert json.loads((tmp_path / "runs" / "q-1" / "metrics.json").read_text())["epochs_completed"] == 2
    assert main(["train", "q.yaml", *sets, "--set", "trainer.epochs=2", "--resume"]) == 2
    assert "every run of 'q' has completed (runs/q, runs/q-1)" in capsys.readouterr().err


# ----------------------------------------------------------------------------- signals and kill -9
SUBPROCESS = [
    *QUICK[:-2],
    "trainer.epochs=3",
    "trainer.checkpoint_every_steps=1",
    "trainer.log_every=1",
    "data.transform={protocol: small, augment: true}",
]


def train_cmd(run_dir, *extra):
    cmd = [sys.executable, "-m", "dmlkit", "train", QUICKSTART, "--run-dir", str(run_dir)]
    for override in [*SUBPROCESS, *extra]:
        cmd += ["--set", override]
    return cmd


def start_and_stop_after(run_dir, step, sig, *extra):
    """Start a training subprocess and send ``sig`` once its checkpoint has passed global step ``step``."""
    proc = subprocess.Popen(train_cmd(run_dir, *extra), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last = run_dir / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if last.is_file() and load_checkpoint(last)["global_step"] >= step:
                break
        except DmlkitError:  # being replaced just now
            pass
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before it was stopped: {proc.stderr.read()[-2000:]}"
    proc.send_signal(sig)
    proc.wait(timeout=60)
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_kill_9_then_resume_gives_the_uninterrupted_metrics(tmp_path, workers):
    extra = f"data.num_workers={workers}"
    straight = subprocess.run(train_cmd(tmp_path / "a", extra), capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr[-2000:]
    proc = start_and_stop_after(tmp_path / "b", 5, signal.SIGKILL, extra)
    assert proc.returncode == -signal.SIGKILL
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["status"] == "running"  # no chance to say more
    resumed = subprocess.run(
        [*train_cmd(tmp_path / "b", extra), "--resume"], capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("a", "b"))
    assert b["status"] == "completed" and a["test"] == b["test"]
    assert [h["metrics"] for h in a["history"]] == [h["metrics"] for h in b["history"]]


@pytest.mark.slow
def test_sigterm_records_the_signal_and_keeps_the_log(tmp_path):
    proc = start_and_stop_after(tmp_path / "run", 3, signal.SIGTERM)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in proc.stderr.read()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "killed-by-signal" and metrics["error"] == "SIGTERM"
    rows = (tmp_path / "run" / "logs" / "csv" / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) >= 1 + 3  # the header and a row per logged step so far
    assert not (tmp_path / "run" / ".lock").exists()
