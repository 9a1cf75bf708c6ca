"""scikit-learn's bundled digits: train on 0-4, test on 5-9, gray 8×8 uint8 images."""

import numpy as np

from dmlkit.data.registry import build_split


def test_zero_shot_split_and_images(tmp_path):
    train, test = build_split("digits", None, "train"), build_split("digits", tmp_path, "test")  # root ignored
    assert (len(train), len(test)) == (901, 896) and len(train) + len(test) == 1797
    assert train.class_names == ["0", "1", "2", "3", "4"] and test.class_names == ["5", "6", "7", "8", "9"]
    assert sorted(set(train.labels.tolist())) == sorted(set(test.labels.tolist())) == [0, 1, 2, 3, 4]
    item = train[0]
    assert item["image"].mode == "L" and item["image"].size == (8, 8) and (item["label"], item["index"]) == (0, 0)
    assert train.images.dtype == np.uint8 and train.images.max() == 255 and train.images.min() == 0
