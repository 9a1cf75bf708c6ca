"""Stanford Online Products from Ebay_train.txt / Ebay_test.txt."""

import pytest

from dmlkit.data.registry import build_split
from dmlkit.errors import DatasetError


def test_splits_from_the_official_lists(sop_root):
    train, test = build_split("sop", sop_root, "train"), build_split("sop", sop_root, "test")
    assert (len(train), train.num_classes, len(test), test.num_classes) == (7, 3, 4, 2)
    assert train.class_names == ["1", "2", "5"] and test.class_names == ["11318", "11320"]
    assert train.labels.tolist() == [0, 0, 1, 1, 1, 2, 2] and test.labels.tolist() == [0, 0, 1, 1]
    assert train.paths[0] == sop_root / "bicycle_final" / "1_train_1.JPG"
    assert train[6]["image"].mode == "RGB"


def test_bad_lists(sop_root):
    listing = sop_root / "Ebay_train.txt"
    lines = listing.read_text().splitlines()
    listing.write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(DatasetError, match=r"Ebay_train\.txt, line 1: expected the header 'image_id class_id"):
        build_split("sop", sop_root, "train")
    listing.write_text("\n".join([*lines, "8 x 1 bicycle_final/a.JPG"]) + "\n")
    with pytest.raises(DatasetError, match=r"Ebay_train\.txt, line 9: class_id must be an integer, got 'x'"):
        build_split("sop", sop_root, "train")
    listing.write_text("\n".join([*lines, "8 3 1"]) + "\n")
    with pytest.raises(DatasetError, match=r"Ebay_train\.txt, line 9: expected 4 fields, got 3"):
        build_split("sop", sop_root, "train")
    (sop_root / "Ebay_test.txt").unlink()
    with pytest.raises(DatasetError, match=r"expected file .*Ebay_test\.txt is missing"):
        build_split("sop", sop_root, "test")


def test_missing_listed_image(sop_root):
    (sop_root / "bicycle_final" / "1_train_1.JPG").unlink()
    with pytest.raises(DatasetError, match=r"image .*1_train_1\.JPG listed in .*Ebay_train\.txt is missing"):
        build_split("sop", sop_root, "train")
