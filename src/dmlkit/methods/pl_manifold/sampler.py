"""Neighbourhood-sampled batches for unsupervised training (STML's protocol).

A batch is ``queries`` random training images, each followed by its ``neighbours − 1`` nearest
neighbours in the current (teacher) embedding, every image listed ``views`` times in a row (each
listing is augmented independently by the loader, giving the views). Each epoch draws a fresh
permutation of the queries, so that every image is a query about once per
``⌊N / (queries · neighbours)⌋`` batches per epoch (one pass over the data in neighbourhoods).
No label is read: the neighbour lists come from :meth:`KNNBatches.set_neighbours`; the method
checkpoints them (:meth:`KNNBatches.state_dict`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np


class KNNBatches:
    """Batches of ``queries`` × ``neighbours`` (× ``views``) indices (a :class:`~dmlkit.data.samplers.BatchSource`).

    An epoch has ``⌊N / (queries · neighbours)⌋`` batches (at least one), over all ranks.

    Args:
        num_examples: Size of the training set.
        queries: Random queries per batch (24 in STML).
        neighbours: Images per query, the query included (5 in STML).
        views: Listings of every image, augmented independently (2 in STML).
        seed: Base seed; epoch ``e`` draws its query order from ``(seed, e)``.
    """

    def __init__(
        self,
        num_examples: int,
        queries: int = 24,
        neighbours: int = 5,
        views: int = 2,
        seed: int = 0,
    ) -> None:
        for name, value in (("queries", queries), ("neighbours", neighbours), ("views", views)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if neighbours > num_examples:
            raise ValueError(f"neighbours ({neighbours}) exceeds the training set size ({num_examples})")
        self.num_examples = num_examples
        self.queries, self.neighbours, self.views = queries, neighbours, views
        self.seed = seed
        self.knn: np.ndarray | None = None

    def __len__(self) -> int:
        return max(1, self.num_examples // (self.queries * self.neighbours))

    def set_neighbours(self, knn: np.ndarray) -> None:
        """(N, ≥ neighbours − 1) nearest-neighbour indices of every example (itself excluded), nearest first."""
        knn = np.asarray(knn, dtype=np.int64)
        if knn.ndim != 2 or len(knn) != self.num_examples or knn.shape[1] < self.neighbours - 1:
            raise ValueError(
                f"neighbour lists of shape {knn.shape}, expected ({self.num_examples}, >= {self.neighbours - 1})"
            )
        self.knn = knn[:, : self.neighbours - 1].copy()

    def batches(self, epoch: int) -> Iterator[list[int]]:
        """The epoch's batches: a fresh permutation of the queries, each with its neighbours."""
        if self.knn is None:
            raise RuntimeError("KNNBatches has no neighbour lists: call set_neighbours first")
        rng = np.random.default_rng([self.seed % 2**63, epoch])
        order = rng.permutation(self.num_examples)
        groups = np.concatenate([order[:, None], self.knn[order]], axis=1)  # (queries, neighbours)
        for b in range(len(self)):
            rows = groups[b * self.queries : (b + 1) * self.queries]
            if len(rows) < self.queries:  # fewer examples than one batch's queries: wrap around
                rows = np.take(groups, np.arange(b * self.queries, (b + 1) * self.queries), axis=0, mode="wrap")
            yield np.repeat(rows.reshape(-1), self.views).tolist()

    def state_dict(self) -> dict[str, Any]:
        """The neighbour lists."""
        return {"knn": None if self.knn is None else self.knn.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("knn") is not None:
            self.set_neighbours(state["knn"])
