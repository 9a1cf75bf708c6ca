"""The evaluator: the same metrics as ``evaluate_embeddings``, plus the method's, for both test layouts."""

import numpy as np
import pytest
import torch

from dmlkit.config.schema import EvalConfig
from dmlkit.data.base import ArrayDataset, EvalSplit
from dmlkit.evaluation.evaluate import evaluate_embeddings
from dmlkit.evaluation.evaluator import Evaluator


def dataset(labels):
    labels = np.asarray(labels)
    return ArrayDataset(np.zeros((len(labels), 2, 2), np.uint8), labels, [f"c{c}" for c in range(labels.max() + 1)])


def embed_by_label(ds):
    """An embedding that puts each class at its own point, with a little per-item offset."""
    labels = ds.labels
    return torch.tensor(np.stack([labels * 10.0, np.arange(len(labels)) * 0.01], 1), dtype=torch.float32), labels


@pytest.mark.parametrize("gallery", [False, True])
def test_retrieval_metrics_and_the_methods_own(gallery):
    query = dataset([0, 0, 1, 1, 2, 2])
    split = EvalSplit(query, dataset([0, 1, 2, 2]) if gallery else None)
    seen = []

    def method_metrics(embeddings, labels, ds, final):
        seen.append((embeddings.shape, ds is query, final))
        return {"own": 0.5}

    cfg = EvalConfig(recall_at=[1, 2])
    result = Evaluator(split, cfg, seed=0, embed=embed_by_label, method_metrics=method_metrics)(final=False)
    q, ql = embed_by_label(query)
    g, gl = (None, None) if split.gallery is None else embed_by_label(split.gallery)
    expected = evaluate_embeddings(q, ql, g, gl, recall_at=(1, 2)).metrics
    assert result.metrics == {**expected, "own": 0.5}
    assert seen == [((6, 2), True, False)]  # the method sees the query embeddings, once
    assert (result.gallery_embeddings is None) == (not gallery) and result.dataset is query
    assert Evaluator(split, cfg, 0, embed_by_label)(recall_at=[4]).metrics.keys() >= {"recall@4"}
