"""The dataset registry and what every registered spec promises: layout text, splits, errors."""

from pathlib import Path

import pytest
import torch

from dmlkit.data.base import DatasetSpec
from dmlkit.data.registry import DATASETS, build_split, dataset_names, get_dataset_spec, register_dataset
from dmlkit.data.transforms import build_transforms
from dmlkit.errors import ConfigError, DatasetError

NAMES = ["cars196", "csv", "cub200", "digits", "folder", "inshop", "mnist", "mnist_closed", "omniglot", "sop"]
FILE_BASED = [n for n in NAMES if n != "digits"]


def test_registry_lists_every_dataset():
    assert dataset_names() == NAMES
    assert "cub200" in DATASETS


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(ConfigError, match="data.dataset: unknown dataset 'cub'; valid choices: cars196, csv, cub200"):
        get_dataset_spec("cub")


@pytest.mark.parametrize("name", NAMES)
def test_specs_are_complete(name):
    spec = get_dataset_spec(name)
    assert spec.name == name and spec.description and spec.layout
    assert spec.mode in ("RGB", "L") and spec.default_image_size >= 8
    assert "train" in spec.splits and ("test" in spec.splits or {"query", "gallery"} <= set(spec.splits))
    assert spec.bundled == (name == "digits")


def test_default_modes_and_sizes():
    assert {n: get_dataset_spec(n).mode for n in NAMES} == {
        "cars196": "RGB", "csv": "RGB", "cub200": "RGB", "digits": "L", "folder": "RGB",
        "inshop": "RGB", "mnist": "L", "mnist_closed": "L", "omniglot": "L", "sop": "RGB",
    }  # fmt: skip
    assert [get_dataset_spec(n).default_image_size for n in ("digits", "mnist", "omniglot", "cub200")] == [
        8,
        28,
        28,
        224,
    ]
    assert get_dataset_spec("inshop").splits == ("train", "query", "gallery")


@pytest.mark.parametrize("name", NAMES)
def test_unknown_split_is_a_config_error(name, tmp_path):
    with pytest.raises(ConfigError, match=rf"dataset '{name}' has no split 'validation'; valid splits: train"):
        build_split(name, tmp_path, "validation")


@pytest.mark.parametrize("name", FILE_BASED)
def test_missing_root_shows_the_layout(name, tmp_path):
    layout = get_dataset_spec(name).layout
    with pytest.raises(DatasetError, match=f"dataset '{name}' needs data.root") as info:
        build_split(name, None, "train")
    assert layout in str(info.value)
    with pytest.raises(DatasetError, match=f"dataset root {tmp_path / 'nowhere'} does not exist") as info:
        build_split(name, tmp_path / "nowhere", "train")
    assert layout in str(info.value)


@pytest.mark.parametrize("name", FILE_BASED)
def test_empty_root_names_what_is_missing(name, tmp_path):
    with pytest.raises(DatasetError) as info:
        build_split(name, tmp_path, "train")
    assert str(tmp_path) in str(info.value)


def test_registering_a_spec():
    spec = DatasetSpec("tiny_test_set", "test only", "(none)", ("train", "test"), "L", build=lambda root, split: None)
    try:
        assert register_dataset(spec) is spec and get_dataset_spec("tiny_test_set") is spec
        with pytest.raises(ValueError, match="registered twice"):
            register_dataset(spec)
    finally:
        DATASETS._items.pop("tiny_test_set", None)


def test_items_with_a_transform_are_tensor_dicts(cub_root):
    dataset = build_split("cub200", cub_root, "train")
    dataset = dataset.with_transform(build_transforms("eval", 32, dataset.mode))
    item = dataset[4]
    assert set(item) == {"image", "label", "index"}
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 32, 32)
    assert (item["label"], item["index"]) == (1, 4)
    assert isinstance(dataset.describe(4), str) and Path(dataset.describe(4)).is_file()
