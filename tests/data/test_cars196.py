"""Cars196 from the original cars_annos.mat; classes 1-98 train, 99-196 test, 'test' flag ignored."""

import numpy as np
import pytest
from scipy.io import savemat

from dmlkit.data.datasets.cars196 import read_annotations
from dmlkit.data.registry import build_split
from dmlkit.errors import DatasetError

from .conftest import CARS_CLASSES, write_cars_annos


def test_zero_shot_split_ignores_the_test_flag(cars_root):
    train, test = build_split("cars196", cars_root, "train"), build_split("cars196", cars_root, "test")
    assert (len(train), len(test)) == (5, 4)
    assert train.class_names == ["1", "98"] and test.class_names == ["99", "196"]
    assert train.labels.tolist() == [0, 0, 1, 1, 1] and test.labels.tolist() == [0, 0, 1, 1]
    assert [p.name for p in test.paths] == ["000006.jpg", "000007.jpg", "000008.jpg", "000009.jpg"]
    assert test[3]["image"].mode == "RGB"


def test_read_annotations(cars_root):
    rows = read_annotations(cars_root / "cars_annos.mat")
    assert rows[0] == ("car_ims/000001.jpg", 1) and [c for _, c in rows] == list(CARS_CLASSES)


def test_bad_annotations(cars_root):
    mat = cars_root / "cars_annos.mat"
    savemat(mat, {"other": np.zeros(2)})
    with pytest.raises(DatasetError, match=r"cars_annos\.mat has no 'annotations' struct array"):
        build_split("cars196", cars_root, "train")
    write_cars_annos(mat, [("car_ims/000001.jpg", 3)], fields=("relative_im_path", "label"))
    with pytest.raises(DatasetError, match=r"cars_annos\.mat: annotations lack the field 'class'"):
        build_split("cars196", cars_root, "train")
    mat.write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=r"cannot read .*cars_annos\.mat"):
        build_split("cars196", cars_root, "train")
    mat.unlink()
    with pytest.raises(DatasetError, match=r"expected file .*cars_annos\.mat is missing"):
        build_split("cars196", cars_root, "train")


def test_images_not_extracted(cars_root):
    for image in (cars_root / "car_ims").iterdir():
        image.unlink()
    with pytest.raises(DatasetError, match=r"image .*car_ims/00000\d\.jpg listed in .*cars_annos\.mat is missing"):
        build_split("cars196", cars_root, "train")
