"""Batch samplers: the P×K class-balanced sampler and a resumable epoch wrapper."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Sampler

from dmlkit.errors import ConfigError, DatasetError


class PKBatchSampler(Sampler[list[int]]):
    """Batches of P classes × K images, every class seen about once per epoch.

    An epoch: each class's images are shuffled and cut into chunks of K (the last chunk is
    filled with other images of the same class; a class with fewer than K images is drawn
    with replacement); batches take one chunk from each of P distinct classes, choosing the
    classes with probability proportional to their remaining chunks, until fewer than P
    classes have chunks left. The remaining batches up to ``len(self)`` = ⌊chunks / P⌋ are
    filled with fresh chunks of random classes, so every epoch has the same length. Most
    images are seen exactly once per epoch; the chunks left over when fewer than P classes
    remain (a few per epoch) are skipped, and padded chunks repeat some images.

    The order depends only on ``(seed, epoch)`` (a local generator; global RNG untouched).
    With ``world_size > 1`` every rank draws the same epoch and keeps batches
    ``rank, rank + world_size, ...``, the same number on each rank.

    Args:
        labels: Label of every dataset item.
        classes_per_batch: P.
        samples_per_class: K (at least 2, so that every anchor has a positive).
        seed: Base seed.
        rank, world_size: Distributed position.

    Raises:
        DatasetError: a class has a single image (it cannot form a positive pair); remove
            such classes from the training set.
        ConfigError: P exceeds the number of classes, or K < 2.
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray,
        classes_per_batch: int,
        samples_per_class: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        labels = np.asarray(labels, dtype=np.int64)
        if samples_per_class < 2:
            raise ConfigError(f"config key 'data.samples_per_class': must be >= 2, got {samples_per_class}")
        classes, counts = np.unique(labels, return_counts=True)
        lonely = classes[counts < 2]
        if len(lonely):
            raise DatasetError(
                f"training class(es) {lonely[:10].tolist()} have a single image and cannot form a positive "
                "pair; remove them from the training set"
            )
        if classes_per_batch > len(classes):
            raise ConfigError(
                f"config key 'data.classes_per_batch': {classes_per_batch} exceeds the {len(classes)} training classes"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        self.p, self.k = classes_per_batch, samples_per_class
        self.seed, self.rank, self.world_size = seed, rank, world_size
        order = np.argsort(labels, kind="stable")
        bounds = np.cumsum(counts)[:-1]
        self.members = np.split(order, bounds)  # members[c] = indices of class c (sorted)
        self.chunks_per_class = np.array([-(-len(m) // self.k) for m in self.members])
        self.epoch = 0

    def __len__(self) -> int:
        return int(self.chunks_per_class.sum()) // self.p // self.world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _chunks(self, rng: np.random.Generator, c: int) -> list[np.ndarray]:
        idx = rng.permutation(self.members[c])
        need = len(self.members[c]) % self.k
        if need:
            pad = rng.choice(self.members[c], self.k - need, replace=len(self.members[c]) < self.k - need)
            idx = np.concatenate([idx, pad])
        return list(idx.reshape(-1, self.k))

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """All batches of ``epoch`` (before the rank split)."""
        rng = np.random.default_rng([self.seed, epoch])
        pending = [self._chunks(rng, c) for c in range(len(self.members))]
        remaining = np.array([len(p) for p in pending], dtype=np.float64)
        total = len(self) * self.world_size
        batches: list[list[int]] = []
        while len(batches) < total and (remaining > 0).sum() >= self.p:
            chosen = rng.choice(len(pending), self.p, replace=False, p=remaining / remaining.sum())
            batches.append(np.concatenate([pending[c].pop() for c in chosen]).tolist())
            remaining[chosen] -= 1
        while len(batches) < total:  # fewer than P classes left: fresh chunks of random classes
            chosen = rng.choice(len(pending), self.p, replace=False)
            batches.append(np.concatenate([self._chunks(rng, c)[0] for c in chosen]).tolist())
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.epoch_batches(self.epoch)
        yield from batches[self.rank :: self.world_size][: len(self)]

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.seed = int(state["epoch"]), int(state["seed"])


class EpochBatchSampler(Sampler[list[int]]):
    """Wraps any batch sampler to start an epoch at a given batch and cap its length.

    ``set_epoch(epoch, start_batch)`` forwards the epoch to the wrapped sampler (when it
    has ``set_epoch``) and skips its first ``start_batch`` batches without loading them,
    which is how a run resumed mid-epoch continues with the batches it had not seen.
    """

    def __init__(self, sampler: Sampler, max_batches: int | None = None) -> None:
        self.sampler = sampler
        self.max_batches = max_batches
        self.start = 0

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return min(n, self.max_batches) if self.max_batches else n

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        self.start = start_batch

    def __iter__(self) -> Iterator[list[int]]:
        return itertools.islice(iter(self.sampler), self.start, len(self))

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict() if hasattr(self.sampler, "state_dict") else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if hasattr(self.sampler, "load_state_dict"):
            self.sampler.load_state_dict(state)
