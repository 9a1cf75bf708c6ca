"""Every dataset loader on a miniature tree in its official layout: counts, labels, splits, errors."""

import gzip
import struct
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from dmlkit.data.registry import build_split, dataset_names, get_dataset_spec
from dmlkit.errors import ConfigError, DatasetError
from paths import SHARED_DATA

from .conftest import write_image


def test_registry_lists_every_dataset():
    assert dataset_names() == ["cars196", "csv", "cub200", "digits", "folder", "inshop", "mnist", "omniglot", "sop"]
    with pytest.raises(ConfigError, match="data.dataset: unknown dataset 'cub'; valid choices: cars196"):
        get_dataset_spec("cub")


def test_digits_zero_shot_split():
    train, test = build_split("digits", None, "train"), build_split("digits", None, "test")
    assert (len(train), len(test)) == (901, 896)
    assert train.class_names == ["0", "1", "2", "3", "4"] and test.class_names == ["5", "6", "7", "8", "9"]
    item = train[0]
    assert item["image"].mode == "L" and item["image"].size == (8, 8) and item["label"] == 0 and item["index"] == 0
    assert np.asarray(item["image"]).max() <= 255


def test_cub_split_labels_and_rgb(cub_root):
    train, test = build_split("cub200", cub_root, "train"), build_split("cub200", cub_root, "test")
    assert (len(train), len(test)) == (6, 6)
    assert train.class_names == ["1", "2"] and test.class_names == ["101", "102"]
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    gray_source = train[0]["image"]
    assert gray_source.mode == "RGB"  # CUB holds grayscale JPEGs: converted
    # the folder itself is accepted as root too
    assert len(build_split("cub200", cub_root / "CUB_200_2011", "test")) == 6


def test_cub_bad_inputs(cub_root, tmp_path):
    with pytest.raises(DatasetError, match="needs data.root"):
        build_split("cub200", None, "train")
    with pytest.raises(DatasetError, match=r"(?s)does not exist.*images\.txt"):
        build_split("cub200", tmp_path / "nowhere", "train")
    labels = cub_root / "CUB_200_2011" / "image_class_labels.txt"
    labels.write_text(labels.read_text() + "13 oops\n")
    with pytest.raises(DatasetError, match=r"image_class_labels\.txt, line 13: class id must be an integer"):
        build_split("cub200", cub_root, "train")
    labels.write_text("1\n")
    with pytest.raises(DatasetError, match=r"image_class_labels\.txt, line 1: expected 2 fields"):
        build_split("cub200", cub_root, "train")
    with pytest.raises(ConfigError, match="no split 'query'"):
        build_split("cub200", cub_root, "query")


def test_missing_and_corrupt_images_are_named(cub_root):
    train = build_split("cub200", cub_root, "train")
    train.paths[1].unlink()
    with pytest.raises(DatasetError, match=r"image file not found: .*img_1\.jpg"):
        train[1]
    train.paths[2].write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=r"cannot read image .*img_2\.jpg"):
        train[2]


def test_cars196_from_mat(tmp_path):
    classes = [1, 1, 98, 98, 99, 99, 196, 196, 196]
    rows = []
    for i, cls in enumerate(classes, start=1):
        rel = f"car_ims/{i:06d}.jpg"
        write_image(tmp_path / rel, value=i)
        rows.append((rel, 0, 0, 5, 5, cls, i % 2))
    dtype = [
        ("relative_im_path", "O"),
        ("bbox_x1", "O"),
        ("bbox_y1", "O"),
        ("bbox_x2", "O"),
        ("bbox_y2", "O"),
        ("class", "O"),
        ("test", "O"),
    ]
    annotations = np.array(
        [tuple(np.array([[v]]) if not isinstance(v, str) else np.array([v]) for v in r) for r in rows], dtype=dtype
    ).reshape(1, -1)
    savemat(tmp_path / "cars_annos.mat", {"annotations": annotations})
    train, test = build_split("cars196", tmp_path, "train"), build_split("cars196", tmp_path, "test")
    assert (len(train), len(test)) == (4, 5)  # the 'test' flag is ignored: zero-shot split by class
    assert train.class_names == ["1", "98"] and test.class_names == ["99", "196"]
    assert test.labels.tolist() == [0, 0, 1, 1, 1]
    assert train.paths[0].name == "000001.jpg" and train[3]["image"].mode == "RGB"
    savemat(tmp_path / "cars_annos.mat", {"other": np.zeros(2)})
    with pytest.raises(DatasetError, match="has no 'annotations'"):
        build_split("cars196", tmp_path, "train")


def _write_sop(root):
    for split, classes in (("train", [1, 1, 2, 2, 2]), ("test", [11, 11, 12, 12])):
        lines = ["image_id class_id super_class_id path"]
        for i, cls in enumerate(classes, start=1):
            rel = f"bicycle_final/{split}_{cls}_{i}.JPG"
            write_image(root / rel, fmt="JPEG")
            lines.append(f"{i} {cls} 1 {rel}")
        (root / f"Ebay_{split}.txt").write_text("\n".join(lines) + "\n")


def test_sop(tmp_path):
    _write_sop(tmp_path)
    train, test = build_split("sop", tmp_path, "train"), build_split("sop", tmp_path, "test")
    assert (len(train), train.num_classes, len(test), test.num_classes) == (5, 2, 4, 2)
    assert test.class_names == ["11", "12"] and train.labels.tolist() == [0, 0, 1, 1, 1]
    (tmp_path / "Ebay_test.txt").unlink()
    with pytest.raises(DatasetError, match=r"expected file .*Ebay_test\.txt is missing"):
        build_split("sop", tmp_path, "test")


def test_inshop_query_and_gallery_share_labels(tmp_path):
    rows = [
        ("id_00000001", "train"),
        ("id_00000001", "train"),
        ("id_00000002", "query"),
        ("id_00000002", "gallery"),
        ("id_00000003", "gallery"),
        ("id_00000004", "query"),
        ("id_00000004", "gallery"),
        ("id_00000004", "gallery"),
    ]
    lines = [str(len(rows)), "image_name item_id evaluation_status"]
    for i, (item, status) in enumerate(rows):
        rel = f"img/WOMEN/Dresses/{item}/{i:02d}_1_front.jpg"
        write_image(tmp_path / rel)
        lines.append(f"{rel} {item} {status}")
    (tmp_path / "Eval").mkdir()
    (tmp_path / "Eval" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    spec = get_dataset_spec("inshop")
    split = spec.eval_split(tmp_path)
    assert (len(split.query), len(split.gallery)) == (2, 4)
    assert split.query.class_names == split.gallery.class_names == ["id_00000002", "id_00000003", "id_00000004"]
    assert split.query.labels.tolist() == [0, 2] and split.gallery.labels.tolist() == [0, 1, 2, 2]
    assert build_split("inshop", tmp_path, "train").labels.tolist() == [0, 0]
    lines[3] = lines[3].replace(" train", " val")
    (tmp_path / "Eval" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match="line 4: evaluation_status must be one of"):
        build_split("inshop", tmp_path, "train")


def test_folder_with_and_without_split_folders(tmp_path):
    for cls in ("a", "b", "c", "d", "e"):
        for j in range(2):
            write_image(tmp_path / "flat" / cls / f"{j}.png")
    train, test = build_split("folder", tmp_path / "flat", "train"), build_split("folder", tmp_path / "flat", "test")
    assert train.class_names == ["a", "b", "c"] and test.class_names == ["d", "e"] and len(test) == 4
    for split, classes in (("train", ("x", "y")), ("test", ("z",))):
        for cls in classes:
            write_image(tmp_path / "split" / split / cls / "0.jpg")
    assert build_split("folder", tmp_path / "split", "test").class_names == ["z"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no class folders with images"):
        build_split("folder", tmp_path / "empty", "train")


def test_csv_lists(tmp_path):
    for name in ("a.png", "b.png", "c.png", "d.png"):
        write_image(tmp_path / "imgs" / name)
    (tmp_path / "train.csv").write_text("path,label\nimgs/a.png,cat\nimgs/b.png,dog\n")
    (tmp_path / "query.csv").write_text(f"path,label\n{tmp_path / 'imgs/c.png'},fox\n")
    (tmp_path / "gallery.csv").write_text("path,label\nimgs/d.png,fox\nimgs/a.png,owl\n")
    assert build_split("csv", tmp_path, "train").class_names == ["cat", "dog"]
    split = get_dataset_spec("csv").eval_split(tmp_path)
    assert split.query.labels.tolist() == [0] and split.gallery.labels.tolist() == [0, 1]
    (tmp_path / "train.csv").write_text("file,label\nimgs/a.png,cat\n")
    with pytest.raises(DatasetError, match=r"train\.csv: header must have the columns 'path' and 'label'"):
        build_split("csv", tmp_path, "train")
    (tmp_path / "train.csv").write_text("path,label\nimgs/a.png,\n")
    with pytest.raises(DatasetError, match=r"train\.csv, line 2: empty 'path' or 'label'"):
        build_split("csv", tmp_path, "train")


def _idx(path, array, magic):
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_mnist_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 20), ("t10k", 10)):
        _idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)), 2051)
        _idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10, 2049)
    train, test = build_split("mnist", tmp_path, "train"), build_split("mnist", tmp_path, "test")
    assert (len(train), len(test)) == (10, 5)
    assert train.class_names == ["0", "1", "2", "3", "4"] and test.class_names == ["5", "6", "7", "8", "9"]
    assert train[0]["image"].size == (28, 28)
    _idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(10), 2051)
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\.gz is not an IDX file with magic number 2049"):
        build_split("mnist", tmp_path, "test")
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\.gz not found"):
        build_split("mnist", tmp_path, "test")


def _omniglot_tree(root, folder, alphabets):
    paths = []
    for alphabet, characters in alphabets.items():
        for c in range(1, characters + 1):
            for r in range(1, 3):
                paths.append(
                    write_image(
                        root / folder / alphabet / f"character{c:02d}" / f"09{c:02d}_{r:02d}.png",
                        mode="L",
                        size=105,
                        value=255,
                    )
                )
    return paths


def test_omniglot_folder_and_zip(tmp_path):
    _omniglot_tree(tmp_path / "extracted", "images_background", {"Greek": 2, "Latin": 1})
    train = build_split("omniglot", tmp_path / "extracted", "train")
    assert (len(train), train.class_names) == (6, ["Greek/character01", "Greek/character02", "Latin/character01"])
    zroot = tmp_path / "zipped"
    zroot.mkdir()
    with zipfile.ZipFile(zroot / "images_evaluation.zip", "w") as zf:
        for path in _omniglot_tree(tmp_path / "src", "images_evaluation", {"Atlantean": 3}):
            zf.write(path, path.relative_to(tmp_path / "src").as_posix())
    test = build_split("omniglot", zroot, "test")
    assert (len(test), test.num_classes) == (6, 3)
    image = test[5]["image"]
    assert image.mode == "L" and image.size == (105, 105)
    # the zip-backed dataset survives pickling (DataLoader workers)
    loader = torch.utils.data.DataLoader(
        test.with_transform(lambda im: torch.tensor(np.asarray(im)).float()), batch_size=3, num_workers=1
    )
    assert sum(len(b["label"]) for b in loader) == 6
    with pytest.raises(DatasetError, match="neither .*images_background/ nor .*images_background.zip exists"):
        build_split("omniglot", zroot, "train")


real = pytest.mark.skipif(not (SHARED_DATA / "omniglot").is_dir(), reason="shared data not present")


@real
def test_real_omniglot_counts():
    train = build_split("omniglot", SHARED_DATA / "omniglot", "train")
    test = build_split("omniglot", SHARED_DATA / "omniglot", "test")
    assert (len(train), train.num_classes, len(test), test.num_classes) == (19280, 964, 13180, 659)
    assert np.bincount(test.labels).tolist() == [20] * 659
    assert test[0]["image"].size == (105, 105)


@real
def test_real_mnist_counts():
    train = build_split("mnist", SHARED_DATA / "mnist", "train")
    test = build_split("mnist", SHARED_DATA / "mnist", "test")
    assert len(train) == sum([5923, 6742, 5958, 6131, 5842])
    assert len(test) == sum([892, 958, 1028, 974, 1009])
    assert np.bincount(test.labels).tolist() == [892, 958, 1028, 974, 1009]
    assert isinstance(train[0]["image"], Image.Image)
