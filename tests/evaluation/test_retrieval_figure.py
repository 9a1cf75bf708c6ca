"""The retrieval figure: random queries, their nearest neighbours (the query itself never among them), the
gallery of a query/gallery split, and green/red by class."""

import numpy as np
import pytest
import torch

import dmlkit.evaluation.retrieval_figure as figure
from dmlkit.data.base import ArrayDataset
from dmlkit.evaluation.evaluator import Evaluation


def dataset(labels):
    images = (np.arange(len(labels))[:, None, None] * np.ones((1, 4, 4))).astype(np.uint8)  # image i is all i
    return ArrayDataset(images, np.asarray(labels), [str(c) for c in sorted(set(labels))])


@pytest.fixture
def drawn(monkeypatch):
    seen = {}

    def fake(path, queries, neighbours, correct, title=""):
        seen.update(queries=[int(np.asarray(q)[0, 0]) for q in queries], correct=correct, title=title)
        seen["neighbours"] = [[int(np.asarray(i)[0, 0]) for i in row] for row in neighbours]
        return path

    monkeypatch.setattr(figure, "plot_retrieval", fake)
    return seen


def test_leave_one_out_neighbours_against_a_hand_search(drawn, tmp_path):
    labels = [0, 0, 0, 1, 1, 1]
    emb = torch.tensor([[0.0], [0.1], [0.3], [5.0], [5.2], [2.0]])  # the last one lies nearer class 0
    evaluation = Evaluation({}, emb, np.asarray(labels), dataset(labels))
    assert figure.write_retrieval_figure(tmp_path / "r.png", evaluation, queries=6, neighbours=2, seed=0)
    expected = {0: [1, 2], 1: [0, 2], 2: [1, 0], 3: [4, 5], 4: [3, 5], 5: [2, 1]}
    assert drawn["queries"] == [0, 1, 2, 3, 4, 5]
    assert drawn["neighbours"] == [expected[q] for q in drawn["queries"]]
    assert drawn["correct"].tolist() == [[True, True]] * 3 + [[True, True], [True, True], [False, False]]


def test_a_gallery_is_searched_and_too_few_candidates_write_nothing(drawn, tmp_path):
    q_labels, g_labels = [0, 1], [1, 0, 0]
    evaluation = Evaluation(
        {}, torch.tensor([[0.0], [4.0]]), np.asarray(q_labels), dataset(q_labels),
        torch.tensor([[4.1], [0.2], [1.0]]), np.asarray(g_labels), dataset(g_labels),
    )  # fmt: skip
    assert figure.write_retrieval_figure(tmp_path / "r.png", evaluation, queries=2, neighbours=2, seed=1)
    assert drawn["neighbours"] == [[1, 2], [0, 2]]  # gallery images (image i is all i)
    assert drawn["correct"].tolist() == [[True, True], [True, False]]
    assert figure.write_retrieval_figure(tmp_path / "r.png", evaluation, queries=2, neighbours=4, seed=1) is None
