"""Refusing a test side whose numbers would mean nothing.

* Leave-one-out retrieval (CUB, Cars, SOP, ...) needs at least two classes and a class with two
  images (otherwise every query is alone and Recall@K is undefined).
* Query/gallery retrieval (In-Shop) needs a gallery of at least two classes sharing a class with
  the queries (otherwise Recall@K is ``nan``).
* The same image file listed twice in one set, or in both the queries and the gallery, finds itself
  as its nearest neighbour: Recall@1 of 1.0 without any training. Such duplicates are refused,
  naming the files. (Only listings are compared here; ``dmlkit check-data`` also compares the
  files' contents.)
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from dmlkit.data.base import DMLDataset, EvalSplit
from dmlkit.errors import DatasetError


def _listings(dataset: DMLDataset) -> list[str]:
    return [dataset.describe(i) for i in range(len(dataset))]


def _repeated(listings: list[str]) -> list[str]:
    return [item for item, n in Counter(listings).items() if n > 1]


def _show(items: list[str]) -> str:
    return ", ".join(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")


def check_test_side(split: EvalSplit, where: str) -> None:
    """Raise a DatasetError naming ``where`` (the dataset and root) when ``split`` cannot be scored."""
    query, gallery = split.query, split.gallery
    q_labels = np.asarray(query.labels)
    q_list = _listings(query)
    if repeated := _repeated(q_list):
        subject = "the test queries list" if gallery is not None else "the test set lists"
        raise DatasetError(
            f"{where}: {subject} the same image more than once ({_show(repeated)}); a repeated image retrieves "
            "itself, so every metric would be inflated"
        )
    if gallery is None:
        counts = np.bincount(q_labels) if len(q_labels) else np.zeros(0, int)
        if (counts > 0).sum() < 2:
            raise DatasetError(f"{where}: the test set has {(counts > 0).sum()} class(es); retrieval needs two or more")
        if counts.max() < 2:
            raise DatasetError(f"{where}: no test class has two images, so no query has a match to retrieve")
        return
    g_labels = np.asarray(gallery.labels)
    g_list = _listings(gallery)
    if repeated := _repeated(g_list):
        raise DatasetError(f"{where}: the gallery lists the same image more than once ({_show(repeated)})")
    if both := sorted(set(q_list) & set(g_list)):
        raise DatasetError(
            f"{where}: {len(both)} image(s) are both queries and gallery images ({_show(both)}); each would "
            "retrieve itself"
        )
    if len(np.unique(g_labels)) < 2:
        raise DatasetError(
            f"{where}: the gallery has {len(np.unique(g_labels))} class(es); retrieval needs two or more"
        )
    if not set(q_labels.tolist()) & set(g_labels.tolist()):
        raise DatasetError(f"{where}: no query class is in the gallery, so no query has a match to retrieve")
