"""Batch samplers: the P×K class-balanced sampler and a resumable epoch wrapper."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Sampler

from dmlkit.errors import ConfigError, DatasetError


def max_pk_batches(chunks_per_class: np.ndarray, p: int) -> int:
    """The most batches of ``p`` chunks from distinct classes that the chunk counts allow.

    That is the largest ``B`` with ``sum(min(chunks_c, B)) >= B * p`` (a class gives at
    most one chunk to each batch).

    Example:
        >>> max_pk_batches(np.array([3, 3, 1]), 2)
        3
        >>> max_pk_batches(np.array([9, 1, 1]), 2)
        2
    """
    lo, hi = 0, int(chunks_per_class.sum()) // p
    while lo < hi:  # the condition is monotone in B: binary search
        mid = (lo + hi + 1) // 2
        if int(np.minimum(chunks_per_class, mid).sum()) >= mid * p:
            lo = mid
        else:
            hi = mid - 1
    return lo


class PKBatchSampler(Sampler[list[int]]):
    """Batches of P classes × K images; an epoch shows every image about once.

    **Epoch.** Each class's images are shuffled and cut into chunks of K. A last, partial
    chunk is filled with other images of the same class drawn without replacement, so
    the K images of a chunk are distinct; a class with fewer than K images gives one
    chunk drawn with replacement. Batches then take one chunk from each of P distinct
    classes. The classes of a batch are drawn with probability proportional to their
    remaining chunks, except that a class whose remaining chunks would otherwise not
    fit in the remaining batches is always taken. This guarantees that the epoch has
    ``B`` batches, the largest number that chunks from distinct classes can form
    (:func:`max_pk_batches`); in the usual case (no class holds more than 1/P of the
    chunks) ``B = ⌊chunks / P⌋``. Finally the batch order is shuffled.

    **Leftovers.** Chunks that do not fit in the ``B`` batches are dropped for the
    epoch (a different random set each epoch): fewer than P chunks, plus the excess of
    any class holding more than ``B`` chunks. So when every class size is a multiple of
    K and the chunk count a multiple of P, every image is seen exactly once per epoch.

    **Determinism.** The order depends only on ``(seed, epoch)``, through a local
    ``numpy.random.Generator``; the global RNGs are neither used nor advanced.

    **Distributed.** With ``world_size > 1`` every rank draws the same epoch and keeps
    batches ``rank, rank + world_size, ...``: disjoint shares of ``len(self) = B //
    world_size`` batches each (the last ``B % world_size`` batches are dropped).

    **Resume.** :meth:`state_dict` stores the epoch and the number of batches yielded
    in it; after :meth:`load_state_dict` the next iteration yields exactly the batches
    that were not yet yielded. :meth:`set_epoch` with another epoch starts that epoch
    at its first batch.

    Args:
        labels: Label of every dataset item.
        classes_per_batch: P.
        samples_per_class: K (at least 2, so that every image has a positive in its batch).
        seed: Base seed (default 0).
        rank: This process's rank (default 0).
        world_size: Number of processes (default 1).
        skip_singletons: Leave classes with a single image out of every batch, with a
            warning (default ``False``: such classes raise a DatasetError).
        class_names: Names of the labels, used in error messages only.

    Raises:
        DatasetError: A class has a single image (it cannot form a positive pair) and
            ``skip_singletons`` is false.
        ConfigError: P exceeds the number of usable classes, P < 1 or K < 2.

    Example:
        >>> sampler = PKBatchSampler([0, 0, 1, 1, 2, 2, 2, 2], classes_per_batch=2, samples_per_class=2)
        >>> len(sampler), [len(batch) for batch in sampler]
        (2, [4, 4])
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray,
        classes_per_batch: int,
        samples_per_class: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        skip_singletons: bool = False,
        class_names: Sequence[str] | None = None,
    ) -> None:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if classes_per_batch < 1:
            raise ConfigError(f"config key 'data.classes_per_batch': must be >= 1, got {classes_per_batch}")
        if samples_per_class < 2:
            raise ConfigError(f"config key 'data.samples_per_class': must be >= 2, got {samples_per_class}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        classes, counts = np.unique(labels, return_counts=True)
        lonely = classes[counts < 2]
        if len(lonely):
            named = [self._name(int(c), class_names) for c in lonely[:10]]
            more = f" and {len(lonely) - 10} more" if len(lonely) > 10 else ""
            message = f"training class(es) {', '.join(named)}{more} have a single image and cannot form a positive pair"
            if not skip_singletons:
                raise DatasetError(
                    f"{message}; remove them from the training data, or build the sampler with "
                    "skip_singletons=True to leave them out of the batches"
                )
            warnings.warn(f"{message}; skipped (skip_singletons=True)", stacklevel=2)
            keep = counts >= 2
            classes, counts = classes[keep], counts[keep]
        if classes_per_batch > len(classes):
            raise ConfigError(
                f"config key 'data.classes_per_batch': {classes_per_batch} exceeds the {len(classes)} "
                "training classes with at least 2 images"
            )
        self.p, self.k = int(classes_per_batch), int(samples_per_class)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        order = np.argsort(labels, kind="stable")
        starts = np.searchsorted(labels[order], classes)
        #: members[i] = dataset indices of the i-th usable class, ascending.
        self.members = [order[s : s + n] for s, n in zip(starts, counts, strict=True)]
        self.chunks_per_class = -(-counts // self.k)
        self.batches_per_epoch = max_pk_batches(self.chunks_per_class, self.p)
        self.epoch = 0
        self._start = 0  # batches of the current epoch to skip at the next iteration (resume)
        self._yielded = 0  # batches of the current epoch yielded so far

    @staticmethod
    def _name(label: int, class_names: Sequence[str] | None) -> str:
        if class_names is not None and 0 <= label < len(class_names):
            return f"{label} ({class_names[label]!r})"
        return str(label)

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        return self.batches_per_epoch // self.world_size

    def set_epoch(self, epoch: int, start_batch: int | None = None) -> None:
        """Select the epoch that the next iteration yields.

        Args:
            epoch: Epoch number; with the seed it fixes the epoch's batches.
            start_batch: Skip this many of the epoch's batches (on this rank). ``None``
                (default) keeps a position restored by :meth:`load_state_dict` when
                ``epoch`` is the restored epoch, and otherwise starts at batch 0.
        """
        if start_batch is None:
            start_batch = self._start if epoch == self.epoch else 0
        if not 0 <= start_batch <= len(self):
            raise ValueError(f"start_batch {start_batch} outside 0..{len(self)}")
        self.epoch, self._start, self._yielded = int(epoch), int(start_batch), int(start_batch)

    def _chunks(self, rng: np.random.Generator, members: np.ndarray) -> np.ndarray:
        """The class's images shuffled and cut into rows of K (see the class docstring)."""
        idx = rng.permutation(members)
        n, rest = len(idx), len(idx) % self.k
        if rest:
            if n >= self.k:  # fill the last chunk with distinct images from the other chunks
                pad = rng.choice(idx[: n - rest], self.k - rest, replace=False)
            else:
                pad = rng.choice(idx, self.k - n, replace=True)
            idx = np.concatenate([idx, pad])
        return idx.reshape(-1, self.k)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """Every batch of ``epoch`` before the split across ranks (``B`` batches)."""
        rng = np.random.default_rng([self.seed % 2**63, int(epoch)])
        chunks = [self._chunks(rng, m) for m in self.members]
        remaining = self.chunks_per_class.copy()
        total = self.batches_per_epoch
        batches: list[list[int]] = []
        for b in range(total):
            left = total - b
            # classes that must give a chunk now to fit their chunks in the batches left
            tight = np.flatnonzero(remaining >= left)
            if len(tight) >= self.p:
                chosen = rng.choice(tight, self.p, replace=False)
            else:
                free = np.flatnonzero((remaining > 0) & (remaining < left))
                # weighted sampling without replacement (Efraimidis-Spirakis keys): weight = chunks left
                keys = np.log1p(-rng.random(len(free))) / remaining[free]
                need = self.p - len(tight)
                chosen = np.concatenate([tight, free[np.argpartition(-keys, need - 1)[:need]]])
                rng.shuffle(chosen)
            used = self.chunks_per_class[chosen] - remaining[chosen]
            batches.append(np.concatenate([chunks[c][u] for c, u in zip(chosen, used, strict=True)]).tolist())
            remaining[chosen] -= 1
        return [batches[i] for i in rng.permutation(total)]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.epoch_batches(self.epoch)[self.rank :: self.world_size][: len(self)]
        start, self._start = self._start, 0
        self._yielded = start
        for batch in batches[start:]:
            self._yielded += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """``{"epoch", "batches_yielded", "seed"}``.

        ``batches_yielded`` counts the batches this sampler handed out in the epoch. A
        DataLoader with workers fetches batches ahead of the training loop, so a loop
        that must resume at the exact step stores its own step count and passes it as
        ``set_epoch(epoch, start_batch=...)`` (the trainer does, via
        :class:`EpochBatchSampler`).
        """
        return {"epoch": self.epoch, "batches_yielded": self._yielded, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`: the next iteration continues where that one stopped."""
        self.seed = int(state.get("seed", self.seed))
        self.epoch = int(state["epoch"])
        self._start = self._yielded = min(int(state.get("batches_yielded", 0)), len(self))


class EpochBatchSampler(Sampler[list[int]]):
    """Wraps any batch sampler to start an epoch at a given batch and cap its length.

    ``set_epoch(epoch, start_batch)`` forwards the epoch to the wrapped sampler (when it
    has ``set_epoch``) and skips its first ``start_batch`` batches without loading them,
    which is how a run resumed mid-epoch continues with the batches it had not seen.
    The position is the caller's: a position restored into a wrapped
    :class:`PKBatchSampler` by ``load_state_dict`` is reset by ``set_epoch``.

    Args:
        sampler: The batch sampler to wrap.
        max_batches: Cap on batches per epoch (``None``: the sampler's length).
    """

    def __init__(self, sampler: Sampler, max_batches: int | None = None) -> None:
        self.sampler = sampler
        self.max_batches = max_batches
        self.start = 0

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return min(n, self.max_batches) if self.max_batches else n

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        if isinstance(self.sampler, PKBatchSampler):
            self.sampler.set_epoch(epoch, start_batch=0)
        elif hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        self.start = start_batch

    def __iter__(self) -> Iterator[list[int]]:
        return itertools.islice(iter(self.sampler), self.start, len(self))

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict() if hasattr(self.sampler, "state_dict") else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if hasattr(self.sampler, "load_state_dict"):
            self.sampler.load_state_dict(state)
