"""Test sides whose numbers would mean nothing are refused, naming the dataset and the files."""

import pytest

from dmlkit.data.checks import check_test_side
from dmlkit.data.registry import get_dataset_spec
from dmlkit.errors import DatasetError

from .conftest import write_image


@pytest.fixture
def root(tmp_path):
    for name in ("a", "b", "c", "d", "e"):
        write_image(tmp_path / f"{name}.png", value=ord(name))
    (tmp_path / "train.csv").write_text("path,label\na.png,x\nb.png,x\n")
    return tmp_path


def check_side(root, test=None, query=None, gallery=None):
    if test is not None:
        (root / "test.csv").write_text("path,label\n" + test)
    if query is not None:
        (root / "query.csv").write_text("path,label\n" + query)
        (root / "gallery.csv").write_text("path,label\n" + gallery)
    check_test_side(get_dataset_spec("csv").eval_split(root), "dataset 'csv'")


def test_a_sound_test_side_passes(root):
    check_side(root, test="a.png,1\nb.png,1\nc.png,2\n")
    check_side(root, query="a.png,1\nc.png,2\n", gallery="b.png,1\nd.png,2\n")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"test": "a.png,1\nb.png,1\n"}, r"the test set has 1 class\(es\); retrieval needs two or more"),
        ({"test": "a.png,1\nb.png,2\n"}, r"no test class has two images"),
        ({"test": "a.png,1\na.png,1\nc.png,2\n"}, r"the test set lists the same image more than once \(.*a\.png\)"),
        ({"query": "a.png,1\n", "gallery": "a.png,1\nb.png,2\n"}, r"1 image\(s\) are both queries and gallery images"),
        ({"query": "a.png,1\n", "gallery": "b.png,2\nc.png,3\n"}, r"no query class is in the gallery"),
        ({"query": "a.png,1\n", "gallery": "b.png,1\nc.png,1\n"}, r"the gallery has 1 class\(es\)"),
        ({"query": "a.png,1\n", "gallery": "b.png,1\nb.png,1\nc.png,2\n"}, r"the gallery lists the same image"),
    ],
)
def test_meaningless_test_sides_are_refused(root, kwargs, message):
    with pytest.raises(DatasetError, match=message):
        check_side(root, **kwargs)
