"""A user's own data going wrong: said before (check-data) or when it happens, in one line naming the file."""

import json

import numpy as np
import pytest
from PIL import Image

from dmlkit.cli.main import main
from paths import QUICKSTART

RUN = ["--set", "trainer.accelerator=cpu", "--set", "trainer.progress_bar=false", "--set", "trainer.epochs=1"]
RUN += ["--set", "eval.untrained=false", "--set", "eval.metrics=[recall]", "--set", "eval.recall_at=[1]"]


def csv_dataset(root, truncated=None, shared=False):
    """Six RGB images per class, classes a/b for training and c/d for testing, listed in CSV files."""
    rng = np.random.default_rng(0)
    rows = {"train": [], "test": []}
    for split, classes in (("train", "ab"), ("test", "cd")):
        for cls in classes:
            for j in range(6):
                path = root / "imgs" / f"{cls}{j}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(path)
                rows[split].append(f"imgs/{cls}{j}.png,{cls}")
    if shared:  # a training image copied into the test side under another name
        (root / "imgs" / "copy.png").write_bytes((root / "imgs" / "a0.png").read_bytes())
        rows["test"].append("imgs/copy.png,c")
    if truncated:
        data = (root / "imgs" / truncated).read_bytes()
        (root / "imgs" / truncated).write_bytes(data[: len(data) // 2])
    for split, lines in rows.items():
        (root / f"{split}.csv").write_text("path,label\n" + "\n".join(lines) + "\n")
    return root


def data_args(root):
    return ["--set", "data.dataset=csv", "--set", f"data.root={root}", "--set", "data.image_size=16"]


def test_check_data_names_unreadable_and_identical_files(tmp_path, capsys):
    root = csv_dataset(tmp_path / "data", truncated="d3.png", shared=True)
    assert main(["check-data", QUICKSTART, *data_args(root), "--quiet"]) == 2
    out = capsys.readouterr().out
    assert "test: 13 images, 2 classes, 1 unreadable" in out and "d3.png" in out
    assert "identical images in train and test (a zero-shot leak)" in out
    assert "train: " in out and "a0.png" in out and "copy.png" in out
    clean = csv_dataset(tmp_path / "clean")
    assert main(["check-data", QUICKSTART, *data_args(clean), "--quiet"]) == 0
    assert "no problem found" in capsys.readouterr().out


@pytest.mark.slow
def test_a_broken_image_met_by_a_loader_worker_is_one_line_and_recorded(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = csv_dataset(tmp_path / "data", truncated="b2.png")
    args = ["train", QUICKSTART, *RUN, *data_args(root), "--set", "data.num_workers=2", "--set", "data.cache=none"]
    args += ["--set", "data.classes_per_batch=2", "--set", "data.samples_per_class=4", "--run-dir", "run"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "b2.png" in err and "Traceback" not in err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "b2.png" in metrics["error"]
    # decoded into memory (data.cache, here auto), the broken file is found before the run starts
    args[args.index("data.cache=none")] = "data.cache=auto"
    args[-1] = "run2"
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "b2.png" in err and "Traceback" not in err
    assert not (tmp_path / "run2" / "checkpoints").exists()


@pytest.mark.slow
def test_a_gray_dataset_is_evaluated_at_an_rgb_runs_mode(tmp_path, capsys):
    root = csv_dataset(tmp_path / "data")
    args = ["train", QUICKSTART, *RUN, *data_args(root), "--run-dir", str(tmp_path / "run")]
    args += ["--set", "data.classes_per_batch=2", "--set", "data.samples_per_class=4"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), "--dataset", "digits"]) == 0  # digits are gray, the run is RGB
    assert json.loads(capsys.readouterr().out)["metrics"]["recall@1"] > 0


def test_outputs_are_checked_before_the_work(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["eval", str(tmp_path / "no-run"), "--output", str(blocker / "metrics.json")]) == 2
    assert f"--output {blocker / 'metrics.json'}: cannot write there" in capsys.readouterr().err
    assert main(["embed", str(tmp_path / "no-run"), "-o", str(tmp_path)]) == 2
    assert "is a folder; expected a file name" in capsys.readouterr().err


def test_a_bad_recall_k_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", str(tmp_path), "--recall-at", "1", "0"])
    assert exit_info.value.code == 2 and "--recall-at: expected a positive integer, got '0'" in capsys.readouterr().err
