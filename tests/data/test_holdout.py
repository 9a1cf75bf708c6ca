"""The validation split carved from the training classes (data.validation_classes)."""

import json

import numpy as np
import pytest

from dmlkit.assembly.data import read_test_side, read_training_split
from dmlkit.config import load_config
from dmlkit.data.base import ArrayDataset
from dmlkit.data.holdout import hold_out_classes
from dmlkit.errors import ConfigError
from paths import QUICKSTART


def data(classes=5, per=3):
    images = np.arange(classes * per * 4, dtype=np.uint8).reshape(classes * per, 2, 2)
    return ArrayDataset(images, np.repeat(np.arange(classes), per), [f"c{i}" for i in range(classes)], mode="L")


def test_the_last_classes_are_held_out_and_relabelled():
    full = data()
    train, val = hold_out_classes(full, 2)
    assert train.class_names == ["c0", "c1", "c2"] and val.class_names == ["c3", "c4"]
    assert val.labels.tolist() == [0, 0, 0, 1, 1, 1] and len(train) == 9
    for i in range(len(val)):  # the same images, under their new label
        assert np.array_equal(np.asarray(val[i]["image"]), np.asarray(full[9 + i]["image"]))
        assert val.describe(i) == full.describe(9 + i) and val.raw_bytes(i) == full.raw_bytes(9 + i)
    assert val.reading(mode="RGB")[0]["image"].mode == "RGB"  # reading reaches the images underneath


@pytest.mark.parametrize("count", [1, 4, "2", True])
def test_a_count_that_leaves_a_part_without_two_classes_is_refused(count):
    with pytest.raises(ConfigError, match="data.validation_classes.*from 2 to 3"):
        hold_out_classes(data(), count)


def test_a_run_with_validation_classes_never_reads_the_test_classes():
    cfg = load_config(QUICKSTART, ["data.validation_classes=2"])
    train, test = read_training_split(cfg), read_test_side(cfg)
    assert train.class_names == ["0", "1", "2"] and test.query.class_names == ["3", "4"] and test.gallery is None
    plain = load_config(QUICKSTART)
    assert read_test_side(plain).query.class_names == ["5", "6", "7", "8", "9"]
    assert read_test_side(cfg, "digits", None).query.class_names == ["3", "4"]  # the run's own test side


def test_a_run_on_validation_classes_says_so(tmp_path, capsys):
    from dmlkit.training.trainer import Trainer

    cfg = load_config(
        QUICKSTART,
        ["data.validation_classes=2", "data.classes_per_batch=3", "trainer.epochs=1", "trainer.max_steps_per_epoch=2",
         "trainer.progress_bar=false", "eval.untrained=false", "eval.metrics=[recall]", "eval.recall_at=[1]"],
    )  # fmt: skip
    metrics = Trainer(cfg, tmp_path / "run").fit()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["train"]["classes"] == 3 and summary["test"]["set"]["classes"] == 2
    assert summary["test"]["validation_classes"] == 2 and metrics["status"] == "completed"
    assert "validation (the last 2 training classes, held out)" in capsys.readouterr().out
