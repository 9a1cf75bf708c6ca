"""MNIST from the official IDX files (gzip, plain, torchvision's MNIST/raw); train 0-4, test 5-9."""

import gzip

import numpy as np
import pytest

from dmlkit.data.datasets.mnist import read_idx
from dmlkit.data.registry import build_split
from dmlkit.errors import DatasetError
from paths import SHARED_DATA

from .conftest import make_mnist, write_idx


def test_split_by_class_from_official_files(mnist_root):
    train, test = build_split("mnist", mnist_root, "train"), build_split("mnist", mnist_root, "test")
    assert (len(train), len(test)) == (10, 5)  # train file: 0-4 twice; t10k file: 5-9 once
    assert train.class_names == ["0", "1", "2", "3", "4"] and test.class_names == ["5", "6", "7", "8", "9"]
    assert train.labels.tolist() == [0, 1, 2, 3, 4] * 2 and test.labels.tolist() == [0, 1, 2, 3, 4]
    image = test[2]["image"]
    assert image.mode == "L" and image.size == (28, 28)
    assert np.asarray(image)[0, 0] == 7  # the t10k image of digit 7 (index 7 in the file)


def test_closed_set_keeps_every_digit_with_shared_labels(mnist_root):
    train = build_split("mnist_closed", mnist_root, "train")
    test = build_split("mnist_closed", mnist_root, "test")
    assert (len(train), len(test)) == (20, 10)  # whole train file, whole t10k file
    assert train.class_names == test.class_names == [str(d) for d in range(10)]
    assert test.labels.tolist() == list(range(10))


@pytest.mark.parametrize(("folder", "compress"), [("", False), ("MNIST/raw", True), ("MNIST/raw", False)])
def test_plain_files_and_torchvision_folder(tmp_path, folder, compress):
    make_mnist(tmp_path, folder, compress)
    assert len(build_split("mnist", tmp_path, "train")) == 10


def test_bad_files_are_named(mnist_root):
    labels = mnist_root / "t10k-labels-idx1-ubyte.gz"
    write_idx(labels, np.arange(10), 2051)
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\.gz is not an IDX file with magic number 2049"):
        build_split("mnist", mnist_root, "test")
    write_idx(labels, np.arange(9), 2049)
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte has 10 images but t10k-labels-idx1-ubyte 9 labels"):
        build_split("mnist", mnist_root, "test")
    with gzip.open(labels, "rb") as fh:
        data = fh.read()
    with gzip.open(labels, "wb") as fh:
        fh.write(data[:-3])
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\.gz is truncated"):
        build_split("mnist", mnist_root, "test")
    labels.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DatasetError, match=r"cannot read .*t10k-labels-idx1-ubyte\.gz"):
        build_split("mnist", mnist_root, "test")
    labels.unlink()
    with pytest.raises(
        DatasetError, match=r"(?s)t10k-labels-idx1-ubyte\.gz not found in .*train-images-idx3-ubyte\.gz"
    ):
        build_split("mnist", mnist_root, "test")


def test_read_idx_shapes(mnist_root):
    assert read_idx(mnist_root / "train-images-idx3-ubyte.gz", 2051).shape == (20, 28, 28)
    assert read_idx(mnist_root / "train-labels-idx1-ubyte.gz", 2049).shape == (20,)


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="shared MNIST not present")
def test_real_mnist_counts():
    train = build_split("mnist", SHARED_DATA / "mnist", "train")
    test = build_split("mnist", SHARED_DATA / "mnist", "test")
    assert len(train) == sum([5923, 6742, 5958, 6131, 5842]) == 30596
    assert len(test) == sum([892, 958, 1028, 974, 1009]) == 4861
    assert np.bincount(train.labels).tolist() == [5923, 6742, 5958, 6131, 5842]
    assert np.bincount(test.labels).tolist() == [892, 958, 1028, 974, 1009]
    assert test.class_names == ["5", "6", "7", "8", "9"]
    assert train[0]["image"].size == (28, 28)
    closed_train = build_split("mnist_closed", SHARED_DATA / "mnist", "train")
    closed_test = build_split("mnist_closed", SHARED_DATA / "mnist", "test")
    assert (len(closed_train), len(closed_test)) == (60000, 10000)
