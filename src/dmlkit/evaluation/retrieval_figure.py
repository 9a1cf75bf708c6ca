"""The retrieval figure of an evaluation: test queries with their nearest neighbours, framed green where
they share the query's class and red otherwise (``RUN_DIR/plots/retrieval.png``, in every run's report).

The queries are drawn at random with the run's seed; each searches what the evaluation searched (the
other queries, the query left out, or the gallery of a query/gallery split) with the evaluation's
distance."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from dmlkit.evaluation.knn import exact_knn
from dmlkit.visualization import plot_retrieval

if TYPE_CHECKING:
    from dmlkit.evaluation.evaluator import Evaluation


def write_retrieval_figure(
    path: str | Path, evaluation: Evaluation, queries: int, neighbours: int, seed: int, distance: str = "euclidean"
) -> Path | None:
    """Write the figure of ``queries`` random queries and their ``neighbours`` nearest items; ``None``
    (nothing written) when there are fewer candidates than ``neighbours``."""
    emb, labels = evaluation.embeddings, evaluation.labels
    gallery = evaluation.gallery_embeddings
    searched = evaluation.gallery_dataset if gallery is not None else evaluation.dataset
    g_labels = evaluation.gallery_labels if gallery is not None else labels
    candidates = len(gallery) if gallery is not None else len(emb) - 1
    if queries < 1 or neighbours < 1 or candidates < neighbours or searched is None:
        return None
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(labels), min(queries, len(labels)), replace=False))
    picked = emb[torch.as_tensor(chosen, device=emb.device)]
    if gallery is not None:
        idx = exact_knn(picked, gallery, neighbours, metric=distance)[1].cpu().numpy()
    else:  # one more, then each query itself dropped from its list
        found = exact_knn(picked, emb, neighbours + 1, metric=distance)[1].cpu().numpy()
        idx = np.stack([row[row != q][:neighbours] for row, q in zip(found, chosen, strict=True)])
    return plot_retrieval(
        path,
        [evaluation.dataset.load_image(int(q)) for q in chosen],
        [[searched.load_image(int(j)) for j in row] for row in idx],
        g_labels[idx] == labels[chosen][:, None],
        title=f"{len(chosen)} random test queries and their {neighbours} nearest neighbours (green: same class)",
    )
