"""In-Shop Clothes Retrieval: train items; query and gallery in one shared label space."""

import pytest

from dmlkit.data.base import EvalSplit
from dmlkit.data.registry import build_split, get_dataset_spec
from dmlkit.errors import ConfigError, DatasetError

from .conftest import inshop_lines


def test_train_query_gallery(inshop_root):
    train = build_split("inshop", inshop_root, "train")
    assert train.class_names == ["id_00000001", "id_00000007"] and train.labels.tolist() == [0, 0, 1]
    assert train.paths[0] == inshop_root / "img/WOMEN/Dresses/id_00000001/00_1_front.jpg"
    split = get_dataset_spec("inshop").eval_split(inshop_root)
    assert isinstance(split, EvalSplit) and split.gallery is not None
    assert (len(split.query), len(split.gallery)) == (2, 4)
    names = ["id_00000002", "id_00000003", "id_00000004"]
    assert split.query.class_names == split.gallery.class_names == names  # one label space
    assert split.query.labels.tolist() == [0, 2] and split.gallery.labels.tolist() == [0, 1, 2, 2]
    assert split.query[1]["image"].mode == "RGB"
    with pytest.raises(ConfigError, match="no split 'test'; valid splits: train, query, gallery"):
        build_split("inshop", inshop_root, "test")


def test_bad_partition_file(inshop_root):
    path = inshop_root / "Eval" / "list_eval_partition.txt"
    lines = inshop_lines()
    path.write_text("\n".join([lines[0], "image item status", *lines[2:]]) + "\n")
    with pytest.raises(
        DatasetError, match=r"list_eval_partition\.txt, line 2: expected the header 'image_name item_id"
    ):
        build_split("inshop", inshop_root, "train")
    path.write_text("\n".join(["99", *lines[1:]]) + "\n")
    with pytest.raises(DatasetError, match=r"line 1: announces 99 images but 9 rows follow"):
        build_split("inshop", inshop_root, "train")
    bad = [*lines[:5], lines[5].replace(" query", " val"), *lines[6:]]
    path.write_text("\n".join(bad) + "\n")
    with pytest.raises(DatasetError, match=r"list_eval_partition\.txt, line 6: evaluation_status must be one of"):
        build_split("inshop", inshop_root, "query")
    path.write_text("\n".join([*lines[:4], "img/x.jpg id_1", *lines[5:]]) + "\n")
    with pytest.raises(DatasetError, match=r"list_eval_partition\.txt, line 5: expected 3 fields, got 2"):
        build_split("inshop", inshop_root, "query")
    path.unlink()
    with pytest.raises(DatasetError, match=r"expected file .*Eval/list_eval_partition\.txt is missing"):
        build_split("inshop", inshop_root, "train")
