"""A user's class folders: train/ + test/ subfolders, or classes split in half by sorted name."""

import pytest

from dmlkit.data.registry import build_split
from dmlkit.errors import DatasetError

from .conftest import make_class_folders, write_image


def test_flat_layout_splits_classes_by_name(tmp_path):
    make_class_folders(tmp_path, {"e": 2, "a": 2, "c": 3, "b": 1, "d": 2})
    (tmp_path / "notes.txt").write_text("ignored")
    write_image(tmp_path / ".hidden" / "0.png")
    write_image(tmp_path / "a" / ".thumbs" / "0.png")
    train, test = build_split("folder", tmp_path, "train"), build_split("folder", tmp_path, "test")
    assert train.class_names == ["a", "b", "c"] and test.class_names == ["d", "e"]  # 5 classes: 3 train, 2 test
    assert train.labels.tolist() == [0, 0, 1, 2, 2, 2] and len(test) == 4
    assert train[0]["image"].mode == "RGB"


def test_train_and_test_folders(tmp_path):
    make_class_folders(tmp_path / "train", {"cat": 2, "dog": 1})
    make_class_folders(tmp_path / "test", {"fox": 2}, ext=".JPEG")
    write_image(tmp_path / "test" / "owl" / "nested" / "0.webp", mode="L")
    (tmp_path / "test" / "owl" / "readme.md").write_text("not an image")
    train, test = build_split("folder", tmp_path, "train"), build_split("folder", tmp_path, "test")
    assert train.class_names == ["cat", "dog"] and len(train) == 3
    assert test.class_names == ["fox", "owl"] and test.labels.tolist() == [0, 0, 1]
    assert test[2]["image"].mode == "RGB"  # gray file converted


def test_bad_layouts(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no class folders with images for split 'train'"):
        build_split("folder", tmp_path / "empty", "train")
    make_class_folders(tmp_path / "half" / "train", {"cat": 2})
    with pytest.raises(DatasetError, match=r"half/train/ exists but .*half/test/ does not"):
        build_split("folder", tmp_path / "half", "train")
    make_class_folders(tmp_path / "one", {"cat": 2})
    with pytest.raises(DatasetError, match="no class folders with images for split 'test'"):
        build_split("folder", tmp_path / "one", "test")


def test_split_folders_in_any_case_are_recognised(tmp_path):
    make_class_folders(tmp_path / "Train", {"a": 2, "b": 2})
    make_class_folders(tmp_path / "TEST", {"c": 2, "d": 2})
    assert build_split("folder", tmp_path, "train").class_names == ["a", "b"]
    assert build_split("folder", tmp_path, "test").class_names == ["c", "d"]
    make_class_folders(tmp_path / "Val", {"e": 2})
    with pytest.raises(DatasetError, match=r"has Train/ and TEST/ and also Val/; .*train and a test split only"):
        build_split("folder", tmp_path, "train")


def test_two_train_folders_are_ambiguous(tmp_path):
    make_class_folders(tmp_path / "train", {"a": 2})
    make_class_folders(tmp_path / "Train", {"b": 2})
    make_class_folders(tmp_path / "test", {"c": 2})
    with pytest.raises(DatasetError, match=r"has Train/ and train/: one train/ folder only"):
        build_split("folder", tmp_path, "test")
