"""Training batches: batch sources, and the one sampler that shares them out across ranks.

A *batch source* holds only batch logic: for an epoch number it lists every batch of that epoch,
for all processes together, as the same sequence on every rank (a function of the seed, the
epoch and state the method installs, such as a cluster index). :class:`EpochBatchSampler` does
the rest once for every source: it shares the epoch's batches out across ranks, caps an epoch's
length, and starts a resumed epoch at the batch it stopped at. The position is the trainer's
(its epoch and step count in the checkpoint), so no sampler keeps or checkpoints one.

Sources: :class:`PKBatches` (P classes × K images, the default) here; the methods' own in
:mod:`dmlkit.methods.magnet.sampler`, :mod:`dmlkit.methods.pl_manifold.sampler` and
:mod:`dmlkit.methods.pseudo_label.sampler`.

**Augmentation seeds.** Given a seed, the epoch sampler hands out every index with a seed of its
own, a function of (seed, epoch, batch, position in the batch), and :class:`SeededItems` draws that
item's random transforms from it. An item's augmentation then depends on neither the loader worker
that loads it nor where an epoch was resumed: a run resumed mid-epoch is exact with any
``data.num_workers``, and the number of workers does not change a run.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from dmlkit.errors import ConfigError, DatasetError


@runtime_checkable
class BatchSource(Protocol):
    """Batch logic of a training sampler (see the module docstring).

    ``len(source)`` is the number of batches of an epoch over all ranks; ``source.batches(epoch)``
    yields them in order, each a list of dataset indices. It may draw lazily (Magnet's batches
    follow the per-example losses of the batches before them), but must give every rank the same
    sequence for the same state.
    """

    def __len__(self) -> int: ...

    def batches(self, epoch: int) -> Iterable[list[int]]: ...


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


class PKBatches:
    """Batches of P classes × K images; an epoch shows every image about once (a :class:`BatchSource`).

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
    ``numpy.random.Generator``; the global RNGs are neither used nor advanced. Every rank
    therefore lists the same epoch, and :class:`EpochBatchSampler` gives each its share.

    Args:
        labels: Label of every dataset item.
        classes_per_batch: P.
        samples_per_class: K (at least 2, so that every image has a positive in its batch).
        seed: Base seed (default 0).
        skip_singletons: Leave classes with a single image out of every batch, with a
            warning (default ``False``: such classes raise a DatasetError).
        class_names: Names of the labels, used in error messages only.
        shards: Processes sharing each batch (``trainer.distributed_batch: global``): a batch holds
            ``classes_per_batch × shards`` classes, ``classes_per_batch`` per process (default 1).

    Raises:
        DatasetError: A class has a single image (it cannot form a positive pair) and
            ``skip_singletons`` is false.
        ConfigError: P exceeds the number of usable classes, P < 1 or K < 2.

    Example:
        >>> source = PKBatches([0, 0, 1, 1, 2, 2, 2, 2], classes_per_batch=2, samples_per_class=2)
        >>> len(source), [len(batch) for batch in source.batches(epoch=0)]
        (2, [4, 4])
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray,
        classes_per_batch: int,
        samples_per_class: int,
        seed: int = 0,
        skip_singletons: bool = False,
        class_names: Sequence[str] | None = None,
        shards: int = 1,
    ) -> None:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if classes_per_batch < 1:
            raise ConfigError(f"config key 'data.classes_per_batch': must be >= 1, got {classes_per_batch}")
        if samples_per_class < 2:
            raise ConfigError(f"config key 'data.samples_per_class': must be >= 2, got {samples_per_class}")
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
        if classes_per_batch * shards > len(classes):
            given = str(classes_per_batch)
            if shards > 1:
                given += (
                    f" per process x {shards} processes = {classes_per_batch * shards} classes per batch (lower it, "
                    "or set trainer.distributed_batch: per_rank for batches of their own),"
                )
            raise ConfigError(
                f"config key 'data.classes_per_batch': {given} exceeds the {len(classes)} "
                "training classes with at least 2 images"
            )
        self.p, self.k = int(classes_per_batch) * int(shards), int(samples_per_class)
        self.seed = int(seed)
        order = np.argsort(labels, kind="stable")
        starts = np.searchsorted(labels[order], classes)
        #: members[i] = dataset indices of the i-th usable class, ascending.
        self.members = [order[s : s + n] for s, n in zip(starts, counts, strict=True)]
        self.chunks_per_class = -(-counts // self.k)
        self.batches_per_epoch = max_pk_batches(self.chunks_per_class, self.p)

    @staticmethod
    def _name(label: int, class_names: Sequence[str] | None) -> str:
        if class_names is not None and 0 <= label < len(class_names):
            return f"{label} ({class_names[label]!r})"
        return str(label)

    def __len__(self) -> int:
        """Batches per epoch (``B``, over all ranks)."""
        return self.batches_per_epoch

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

    def batches(self, epoch: int) -> list[list[int]]:
        """Every batch of ``epoch`` (``B`` batches, before the split across ranks)."""
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


_MASK64 = 2**64 - 1


def item_seed(*values: int) -> int:
    """A 63-bit seed mixed from integers (splitmix64 steps): nearby inputs give unrelated seeds.

    Example:
        >>> item_seed(0, 1, 2, 3) == item_seed(0, 1, 2, 3) != item_seed(0, 1, 2, 4)
        True
    """
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = ((h ^ (int(v) & _MASK64)) * 0xBF58476D1CE4E5B9) & _MASK64
        h ^= h >> 31
        h = (h * 0x94D049BB133111EB) & _MASK64
        h ^= h >> 29
    return h & (2**63 - 1)


class SeededItems(Dataset):
    """``dataset`` read with the keys of a seeded :class:`EpochBatchSampler`: ``(index, seed)``.

    The item is loaded and transformed with torch's CPU generator (what torchvision's random transforms
    draw from) seeded by ``seed``, and the generator's state is put back afterwards, so the RNG of the
    process that loads it (a worker, or the training process itself) is left as it was. A plain index
    is read as it is. A batch's items are read together (:meth:`__getitems__`, which the DataLoader
    calls): the state is saved and restored once per batch, and each item reseeds the CPU generator
    alone (``torch.manual_seed`` also seeds every accelerator, about 70× slower: 0.2 ms an item).
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: int | tuple[int, int]):
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: Sequence[int | tuple[int, int]]) -> list:
        if not any(isinstance(key, tuple) for key in keys):
            return [self.dataset[key] for key in keys]
        generator = torch.default_generator
        state = generator.get_state()
        try:
            out = []
            for key in keys:
                if isinstance(key, tuple):
                    index, seed = key
                    generator.manual_seed(seed)
                    out.append(self.dataset[index])
                else:
                    out.append(self.dataset[key])
            return out
        finally:
            generator.set_state(state)


class EpochBatchSampler(Sampler[list[int]]):
    """The training batch sampler: a :class:`BatchSource`'s epochs, shared out across ranks.

    Two ways to share (``shard``):

    * ``True`` (``trainer.distributed_batch: global``): every batch of the source is one global
      batch; rank ``r`` of ``world_size`` takes its ``r``-th contiguous ``1/world_size`` of each
      (the source draws batches whose groups are whole multiples of ``world_size``, so each rank
      gets whole classes or clusters). ``len(self) = len(source)``.
    * ``False`` (``per_rank``): rank ``r`` takes whole batches ``r, r + world_size, ...``: disjoint
      shares of ``len(self) = len(source) // world_size`` batches each (the last
      ``len(source) % world_size`` are dropped).

    Either is capped at ``max_batches``. ``set_epoch(epoch, start_batch)`` selects the epoch and
    skips this rank's first ``start_batch`` steps without loading them: how a run resumed mid-epoch
    continues with the batches it had not trained on. The position is set by the caller and is not
    state of its own. An item's augmentation seed is a function of its global batch and position,
    so a sharded batch is augmented as the same batch in one process.

    Args:
        source: The batch source.
        rank: This process's rank (default 0).
        world_size: Number of processes (default 1).
        max_batches: Cap on steps per epoch (``None``: no cap).
        seed: With a seed, every index comes as ``(index, item seed)`` for :class:`SeededItems`
            (see the module docstring); ``None`` (default): plain indices.
        shard: Share each batch out (``True``) or hand out whole batches (``False``, default).

    Example:
        >>> source = PKBatches([0, 0, 1, 1, 2, 2, 3, 3], 2, 2)
        >>> sampler = EpochBatchSampler(source, rank=1, world_size=2)
        >>> len(sampler), [len(batch) for batch in sampler]
        (1, [4])
        >>> sharded = EpochBatchSampler(source, rank=1, world_size=2, shard=True)
        >>> len(sharded), [len(batch) for batch in sharded]
        (2, [2, 2])
    """

    def __init__(
        self,
        source: BatchSource,
        rank: int = 0,
        world_size: int = 1,
        max_batches: int | None = None,
        seed: int | None = None,
        shard: bool = False,
    ) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        if max_batches is not None and max_batches < 1:
            raise ValueError(f"max_batches must be >= 1, got {max_batches}")
        self.source = source
        self.rank, self.world_size, self.max_batches = int(rank), int(world_size), max_batches
        self.seed = seed
        self.shard = bool(shard)
        self.epoch = 0
        self.start = 0

    def __len__(self) -> int:
        """Steps per epoch on this rank."""
        n = len(self.source) if self.shard else len(self.source) // self.world_size
        return min(n, self.max_batches) if self.max_batches else n

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Iterate ``epoch`` from this rank's batch ``start_batch`` on."""
        if not 0 <= start_batch <= len(self):
            raise ValueError(f"start_batch {start_batch} outside 0..{len(self)}")
        self.epoch, self.start = int(epoch), int(start_batch)

    def __iter__(self) -> Iterator[list]:
        if self.shard:
            numbered = zip(itertools.count(self.start), self._shards())
        else:
            first = self.rank + self.start * self.world_size
            stop = self.rank + (len(self) - 1) * self.world_size + 1  # nothing after this rank's last batch is drawn
            batches = itertools.islice(iter(self.source.batches(self.epoch)), first, max(stop, first), self.world_size)
            numbered = zip(itertools.count(first, self.world_size), ((0, batch) for batch in batches))
        if self.seed is None:
            return (batch for _, (_, batch) in numbered)
        return (
            [(i, item_seed(self.seed, self.epoch, b, offset + pos)) for pos, i in enumerate(batch)]
            for b, (offset, batch) in numbered
        )

    def _shards(self) -> Iterator[tuple[int, list]]:
        """This rank's (offset in the batch, shard) of every global batch from ``start`` on."""
        for b, batch in enumerate(itertools.islice(iter(self.source.batches(self.epoch)), self.start, len(self))):
            if len(batch) % self.world_size:
                raise ConfigError(
                    f"training batch {self.start + b} of epoch {self.epoch} has {len(batch)} images, which do not "
                    f"split evenly across {self.world_size} processes (trainer.devices x trainer.num_nodes); use "
                    "a batch size that does, or trainer.distributed_batch: per_rank"
                )
            n = len(batch) // self.world_size
            yield self.rank * n, list(batch[self.rank * n : (self.rank + 1) * n])
