"""The label-hiding view that unsupervised methods train on."""

import pytest

from dmlkit.data.datasets.digits import build
from dmlkit.data.unlabeled import LabelAccessError, UnlabeledDataset


def test_items_have_no_label_and_label_reads_raise():
    base = build(None, "train")
    view = UnlabeledDataset(base)
    assert len(view) == len(base) and view.hides_labels and not base.hides_labels
    item = view[3]
    assert set(item) == {"image", "index"} and item["index"] == 3
    for attribute in ("labels", "class_names", "num_classes"):
        with pytest.raises(LabelAccessError, match="unsupervised"):
            getattr(view, attribute)
    assert view.load_image(3).tobytes() == base.load_image(3).tobytes()
    assert view.with_transform(None)[3]["image"].tobytes() == base.load_image(3).tobytes()
