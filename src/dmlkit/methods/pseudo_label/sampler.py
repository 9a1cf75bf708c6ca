"""P×K batches over pseudo-classes whose labels change between epochs.

The pseudo-labels (k-means assignments of the training set) are installed with
:meth:`PseudoLabelBatches.set_labels`; the batches are those of
:class:`~dmlkit.data.samplers.PKBatches` over them, with clusters of a single image left out.
The number of batches per epoch does not depend on the labels, ``max(1, num_examples // (P·K))``
(over all ranks), so that the trainer's ``steps_per_epoch`` (and the LR schedule built on it)
stays valid when the clusters change. The epoch's batches are read from a stream of the P×K
source's epochs, enough of them to fill the fixed length (usually one). The method checkpoints
the pseudo-labels; this source keeps no state of its own beyond them.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator

import numpy as np

from dmlkit.data.samplers import PKBatches
from dmlkit.errors import ConfigError


class PseudoLabelBatches:
    """Batches of P pseudo-classes × K images, a fixed number per epoch (a :class:`~dmlkit.data.samplers.BatchSource`).

    Args:
        num_examples: Size of the training set.
        classes_per_batch: P, pseudo-classes per batch.
        samples_per_class: K, images per pseudo-class (at least 2).
        seed: Base seed; with the epoch and the labels it fixes the batches.
    """

    def __init__(self, num_examples: int, classes_per_batch: int, samples_per_class: int, seed: int = 0) -> None:
        if classes_per_batch < 1:
            raise ValueError(f"classes_per_batch (P) must be >= 1, got {classes_per_batch}")
        if samples_per_class < 2:
            raise ValueError(f"samples_per_class (K) must be >= 2, got {samples_per_class}")
        self.num_examples = int(num_examples)
        self.p, self.k = int(classes_per_batch), int(samples_per_class)
        self.seed = int(seed)
        self.labels: np.ndarray | None = None
        self._pk: PKBatches | None = None

    def __len__(self) -> int:
        return max(1, self.num_examples // (self.p * self.k))

    @property
    def num_pseudo_classes(self) -> int:
        """Pseudo-classes that enter batches (clusters of at least two images); 0 before :meth:`set_labels`."""
        return 0 if self._pk is None else len(self._pk.members)

    def set_labels(self, labels: np.ndarray) -> None:
        """Use ``labels`` (one pseudo-label per training example) for the batches drawn from now on.

        Raises:
            ValueError: ``labels`` does not have one entry per example.
            ConfigError: Fewer than P clusters hold two images or more.
        """
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(labels) != self.num_examples:
            raise ValueError(f"{len(labels)} pseudo-labels, expected one per training example ({self.num_examples})")
        _, counts = np.unique(labels, return_counts=True)
        usable = int((counts >= 2).sum())
        if usable < self.p:
            raise ConfigError(
                f"config key 'method.classes_per_batch': {self.p} exceeds the {usable} pseudo-classes with at "
                "least 2 images; lower it or raise method.clusters"
            )
        with warnings.catch_warnings():  # singleton clusters are expected; the method logs their count
            warnings.filterwarnings("ignore", message=".*single image.*")
            self._pk = PKBatches(labels, self.p, self.k, self.seed, skip_singletons=True)
        self.labels = labels.copy()

    def batches(self, epoch: int) -> Iterator[list[int]]:
        """The epoch's batches, read from consecutive epochs of the P×K source over the pseudo-classes."""
        if self._pk is None:
            raise RuntimeError("PseudoLabelBatches has no pseudo-labels: call set_labels first")
        rounds = -(-len(self) // len(self._pk))  # P×K epochs per epoch (usually 1)
        stream = itertools.chain.from_iterable(self._pk.batches(epoch * rounds + r) for r in range(rounds))
        yield from itertools.islice(stream, len(self))
