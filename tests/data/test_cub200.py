"""CUB-200-2011 from images.txt + image_class_labels.txt; classes 1-100 train, 101-200 test."""

import pytest

from dmlkit.data.registry import build_split
from dmlkit.errors import ConfigError, DatasetError


def test_zero_shot_split(cub_root):
    train, test = build_split("cub200", cub_root, "train"), build_split("cub200", cub_root, "test")
    assert (len(train), len(test)) == (9, 9)
    assert train.class_names == ["1", "2", "100"] and test.class_names == ["101", "102", "200"]
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert train.paths[3].relative_to(cub_root).as_posix() == "CUB_200_2011/images/002.Bird_2/Bird_2_0.jpg"
    # the folder itself is accepted as root too
    assert build_split("cub200", cub_root / "CUB_200_2011", "test").paths == test.paths


def test_grayscale_jpeg_is_converted_to_rgb(cub_root):
    train = build_split("cub200", cub_root, "train")
    image = train[0]["image"]
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (1, 1, 1)


def test_bad_annotation_files(cub_root, tmp_path):
    base = cub_root / "CUB_200_2011"
    with pytest.raises(DatasetError, match=r"expected file .*CUB_200_2011/images\.txt is missing"):
        build_split("cub200", tmp_path, "train")
    labels = base / "image_class_labels.txt"
    original = labels.read_text()
    labels.write_text(original + "19 oops\n")
    with pytest.raises(
        DatasetError, match=r"image_class_labels\.txt, line 19: class id must be an integer, got 'oops'"
    ):
        build_split("cub200", cub_root, "train")
    labels.write_text(original + "19\n")
    with pytest.raises(DatasetError, match=r"image_class_labels\.txt, line 19: expected 2 fields"):
        build_split("cub200", cub_root, "train")
    labels.write_text(original + "19 5\n")
    with pytest.raises(DatasetError, match=r"image ids \[19\] appear in only one of .*images\.txt"):
        build_split("cub200", cub_root, "train")
    labels.unlink()
    with pytest.raises(DatasetError, match=r"expected file .*image_class_labels\.txt is missing") as info:
        build_split("cub200", cub_root, "train")
    assert "ROOT/CUB_200_2011/images.txt" in str(info.value)  # the layout is shown
    with pytest.raises(ConfigError, match="no split 'query'"):
        build_split("cub200", cub_root, "query")


def test_missing_images(cub_root):
    (cub_root / "CUB_200_2011" / "images" / "200.Bird_200" / "Bird_200_2.jpg").unlink()  # the last listed
    with pytest.raises(DatasetError, match=r"image .*Bird_200_2\.jpg listed in .*images\.txt is missing"):
        build_split("cub200", cub_root, "test")
    train = build_split("cub200", cub_root, "train")  # only a sample is checked at build time ...
    train.paths[1].unlink()
    with pytest.raises(DatasetError, match=r"image file not found: .*Bird_1_1\.jpg"):  # ... the rest at load time
        train[1]
    train.paths[2].write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=r"cannot read image .*Bird_1_2\.jpg"):
        train[2]
