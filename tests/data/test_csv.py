"""A user's images listed in CSV files (path,label), with test or query/gallery evaluation."""

import pytest

from dmlkit.data.registry import build_split, get_dataset_spec
from dmlkit.errors import DatasetError

from .conftest import write_image


@pytest.fixture
def csv_root(tmp_path):
    for name in ("a.png", "b.png", "c.png", "d.png"):
        write_image(tmp_path / "imgs" / name)
    write_image(tmp_path / "gray.jpg", mode="L")
    (tmp_path / "train.csv").write_text("path,label,note\nimgs/a.png,cat,x\nimgs/b.png,dog,\n\nimgs/c.png,cat,y\n")
    (tmp_path / "test.csv").write_text(f"label,path\nowl,{tmp_path / 'gray.jpg'}\n")
    return tmp_path


def test_train_and_test(csv_root):
    train, test = build_split("csv", csv_root, "train"), build_split("csv", csv_root, "test")
    assert train.class_names == ["cat", "dog"] and train.labels.tolist() == [0, 1, 0]
    assert train.paths[1] == csv_root / "imgs" / "b.png"
    assert test.paths[0] == csv_root / "gray.jpg" and test[0]["image"].mode == "RGB"  # absolute path; RGB
    split = get_dataset_spec("csv").eval_split(csv_root)
    assert split.gallery is None and len(split.query) == 1


def test_query_and_gallery_share_labels(csv_root):
    (csv_root / "query.csv").write_text("path,label\nimgs/c.png,fox\n")
    (csv_root / "gallery.csv").write_text("path,label\nimgs/d.png,fox\nimgs/a.png,ant\n")
    split = get_dataset_spec("csv").eval_split(csv_root)
    assert split.query.class_names == split.gallery.class_names == ["ant", "fox"]
    assert split.query.labels.tolist() == [1] and split.gallery.labels.tolist() == [1, 0]


def test_bad_files(csv_root):
    train = csv_root / "train.csv"
    train.write_text("file,label\nimgs/a.png,cat\n")
    with pytest.raises(DatasetError, match=r"train\.csv, line 1: header must have the columns 'path' and 'label'"):
        build_split("csv", csv_root, "train")
    train.write_text("path,label\nimgs/a.png,cat\nimgs/b.png,\n")
    with pytest.raises(DatasetError, match=r"train\.csv, line 3: empty 'path' or 'label'"):
        build_split("csv", csv_root, "train")
    train.write_text("path,label\nimgs/a.png,cat,extra\n")
    with pytest.raises(DatasetError, match=r"train\.csv, line 2: expected 2 fields, got 3"):
        build_split("csv", csv_root, "train")
    train.write_text("path,label\n")
    with pytest.raises(DatasetError, match=r"train\.csv lists no images"):
        build_split("csv", csv_root, "train")
    train.write_text("")
    with pytest.raises(DatasetError, match=r"train\.csv is empty"):
        build_split("csv", csv_root, "train")
    train.write_text("path,label\nimgs/missing.png,cat\n")
    with pytest.raises(DatasetError, match=r"image .*missing\.png listed in .*train\.csv is missing"):
        build_split("csv", csv_root, "train")
    rows = "".join(f"imgs/{n}.png,cat\n" for n in "abc")  # a path missing in the middle of the file is found too
    train.write_text("path,label\n" + rows + "imgs/gone.png,dog\n" + rows)
    with pytest.raises(DatasetError, match=r"image .*gone\.png listed in .*train\.csv is missing"):
        build_split("csv", csv_root, "train")
    with pytest.raises(DatasetError, match=r"expected file .*query\.csv is missing"):
        build_split("csv", csv_root, "query")
