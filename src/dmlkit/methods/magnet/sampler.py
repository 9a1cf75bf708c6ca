"""Neighbourhood sampling for the magnet loss (Rippel et al. 2016, §3.2).

Every batch is one neighbourhood: a seed cluster, drawn with probability proportional to its
recent mean per-example loss, then the M − 1 clusters of *other* classes whose centroids are
nearest to the seed's, nearest first, and D examples from each (without replacement, except in a
cluster smaller than D). The batch lists the M groups of D indices one after the other, so the
method recovers the batch clusters by position.

Losses are kept per training example (the last loss each one had, ``nan`` before its first
batch); a cluster's weight is the mean over its members that have one. Clusters none of whose
members has been seen get the mean weight of the seen ones (all weights equal before any loss).
Because the weights live per example, they survive a refresh of the cluster index. The method
checkpoints them (:meth:`NeighbourhoodBatches.state_dict`).

Batches are drawn lazily, one at a time: the weights of a batch follow the losses of the batches
before it, so every process must record the same losses: under ``trainer.distributed_batch: global``
the method records those of the gathered batch, identical on every process, which therefore draw
the same neighbourhoods. Under ``per_rank`` each process records its own batches' losses and the
processes' weights drift apart (each then draws whole batches of its own, so nothing breaks).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from dmlkit.methods.magnet.cluster_index import ClusterIndex


class NeighbourhoodBatches:
    """Batches of M clusters × D examples from a :class:`ClusterIndex` (a :class:`~dmlkit.data.samplers.BatchSource`).

    An epoch has ``⌈N / (M·D)⌉`` batches (over all ranks).

    Args:
        num_examples: Size of the training set.
        clusters_per_batch: M (seed cluster + M − 1 impostor clusters).
        samples_per_cluster: D.
        seed: Base seed; batch ``b`` of epoch ``e`` draws from ``(seed, e, b)``, so that skipping
            batches on resume does not change the ones that follow.
    """

    def __init__(self, num_examples: int, clusters_per_batch: int, samples_per_cluster: int, seed: int = 0) -> None:
        if clusters_per_batch < 2:
            raise ValueError(f"clusters_per_batch (M) must be >= 2 (a seed and an impostor), got {clusters_per_batch}")
        if samples_per_cluster < 1:
            raise ValueError(f"samples_per_cluster (D) must be >= 1, got {samples_per_cluster}")
        self.num_examples = num_examples
        self.m, self.d = clusters_per_batch, samples_per_cluster
        self.seed = seed
        self.index: ClusterIndex | None = None
        self._members: list[np.ndarray] = []
        self._example_loss: np.ndarray | None = None  # allocated at first use

    @property
    def example_loss(self) -> np.ndarray:
        """The latest loss of every training example (``nan``: not drawn yet)."""
        if self._example_loss is None:
            self._example_loss = np.full(self.num_examples, np.nan)
        return self._example_loss

    def __len__(self) -> int:
        return max(1, -(-self.num_examples // (self.m * self.d)))

    def set_index(self, index: ClusterIndex) -> None:
        """Use a (new) cluster index for the batches drawn from now on."""
        if len(index.assignments) != self.num_examples:
            raise ValueError(
                f"the cluster index covers {len(index.assignments)} examples, expected {self.num_examples}"
            )
        if len(np.unique(index.cluster_class)) < 2:
            raise ValueError("neighbourhood sampling needs clusters of at least two classes")
        self.index = index
        self._members = index.members()

    def record_losses(self, indices: np.ndarray, losses: np.ndarray) -> None:
        """Store the latest per-example losses (what the seed-cluster weights are made of)."""
        self.example_loss[np.asarray(indices)] = np.asarray(losses, dtype=np.float64)

    def cluster_weights(self) -> np.ndarray:
        """Sampling probability of every cluster as seed (sums to 1)."""
        assert self.index is not None
        seen = ~np.isnan(self.example_loss)
        n = self.index.num_clusters
        total = np.bincount(self.index.assignments[seen], weights=self.example_loss[seen], minlength=n)
        count = np.bincount(self.index.assignments[seen], minlength=n)
        weights = np.divide(total, count, out=np.zeros(n), where=count > 0)
        if (count > 0).any():
            weights[count == 0] = weights[count > 0].mean()
        else:
            weights[:] = 1.0
        if weights.sum() <= 0:  # every recorded loss is 0: fall back to uniform
            weights[:] = 1.0
        return weights / weights.sum()

    def draw(self, epoch: int, batch: int) -> tuple[list[int], np.ndarray]:
        """Batch ``batch`` of ``epoch``: (dataset indices, the M index clusters it was drawn from)."""
        if self.index is None:
            raise RuntimeError("NeighbourhoodBatches has no cluster index: call set_index first")
        rng = np.random.default_rng([self.seed % 2**63, epoch, batch])
        seed_cluster = int(rng.choice(self.index.num_clusters, p=self.cluster_weights()))
        clusters = np.concatenate([[seed_cluster], self.index.nearest_impostors(seed_cluster, self.m - 1)])
        out: list[int] = []
        for c in clusters:
            members = self._members[c]
            out.extend(rng.choice(members, self.d, replace=len(members) < self.d).tolist())
        return out, clusters

    def batches(self, epoch: int) -> Iterator[list[int]]:
        """The epoch's batches, each drawn when it is asked for."""
        for b in range(len(self)):
            yield self.draw(epoch, b)[0]

    def state_dict(self) -> dict[str, Any]:
        """The per-example losses (the cluster index is the method's)."""
        return {"example_loss": self.example_loss.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        loss = np.asarray(state["example_loss"], dtype=np.float64)
        if loss.shape != (self.num_examples,):
            raise ValueError(f"the saved state holds {len(loss)} example losses, expected {self.num_examples}")
        self._example_loss = loss.copy()
