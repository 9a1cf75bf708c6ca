"""Omniglot from the official zips or their extracted folders; class = alphabet/character."""

import numpy as np
import pytest
import torch

from dmlkit.data.base import ImageFileDataset, ZipImageDataset
from dmlkit.data.registry import build_split
from dmlkit.data.transforms import build_transforms
from dmlkit.errors import DatasetError
from paths import SHARED_DATA

from .conftest import make_omniglot_folder, make_omniglot_zip

BACKGROUND = {"Greek": 2, "Latin": 1}
EVALUATION = {"Atlantean": 3}
NAMES = ["Greek/character01", "Greek/character02", "Latin/character01"]


def test_extracted_folders(tmp_path):
    make_omniglot_folder(tmp_path, "images_background", BACKGROUND)
    train = build_split("omniglot", tmp_path, "train")
    assert isinstance(train, ImageFileDataset)
    assert (len(train), train.class_names, train.labels.tolist()) == (6, NAMES, [0, 0, 1, 1, 2, 2])
    image = train[0]["image"]
    assert image.mode == "L" and image.size == (105, 105) and np.asarray(image).max() == 255  # 1-bit -> L


def test_official_zips(tmp_path):
    make_omniglot_zip(tmp_path / "root", "images_background", BACKGROUND, tmp_path / "scratch")
    make_omniglot_zip(tmp_path / "root", "images_evaluation", EVALUATION, tmp_path / "scratch")
    train, test = (
        build_split("omniglot", tmp_path / "root", "train"),
        build_split("omniglot", tmp_path / "root", "test"),
    )
    assert isinstance(test, ZipImageDataset)
    assert train.class_names == NAMES and (len(test), test.num_classes) == (6, 3)
    assert test.describe(0).endswith("images_evaluation.zip:images_evaluation/Atlantean/character01/0901_01.png")
    # 105×105 -> 28×28 with the small protocol; the zip-backed dataset works in worker processes
    test = test.with_transform(build_transforms("eval", 28, "L"))
    loader = torch.utils.data.DataLoader(test, batch_size=4, num_workers=1)
    batches = list(loader)
    assert batches[0]["image"].shape == (4, 1, 28, 28) and sum(len(b["label"]) for b in batches) == 6


def test_missing_and_bad_archives(tmp_path):
    with pytest.raises(DatasetError, match=r"neither .*images_background/ nor .*images_background\.zip exists"):
        build_split("omniglot", tmp_path, "train")
    (tmp_path / "images_evaluation.zip").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match=r"images_evaluation\.zip is not a valid zip file"):
        build_split("omniglot", tmp_path, "test")
    (tmp_path / "images_background").mkdir()
    with pytest.raises(DatasetError, match=r"no PNG files under .*images_background"):
        build_split("omniglot", tmp_path, "train")


@pytest.mark.skipif(not (SHARED_DATA / "omniglot").is_dir(), reason="shared Omniglot not present")
def test_real_omniglot_counts():
    train = build_split("omniglot", SHARED_DATA / "omniglot", "train")
    test = build_split("omniglot", SHARED_DATA / "omniglot", "test")
    assert (len(train), train.num_classes, len(test), test.num_classes) == (19280, 964, 13180, 659)
    assert np.bincount(train.labels).tolist() == [20] * 964 and np.bincount(test.labels).tolist() == [20] * 659
    assert train.class_names[0] == "Alphabet_of_the_Magi/character01"
    assert not set(train.class_names) & set(test.class_names)
    image = test[0]["image"]
    assert image.mode == "L" and image.size == (105, 105)
