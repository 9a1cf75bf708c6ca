"""The P×K batch sampler: composition, epoch coverage, determinism, resume and rank sharding."""

import itertools

import numpy as np
import pytest

from dmlkit.data.samplers import EpochBatchSampler, PKBatchSampler
from dmlkit.errors import ConfigError, DatasetError

LABELS = np.repeat(np.arange(12), 8)  # 12 classes × 8 images, shuffled order of items
LABELS = np.random.default_rng(0).permutation(LABELS)


def test_batches_are_p_classes_by_k_images():
    sampler = PKBatchSampler(LABELS, classes_per_batch=4, samples_per_class=4, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 12 * 8 // 4 // 4
    for batch in batches:
        classes, counts = np.unique(LABELS[batch], return_counts=True)
        assert len(classes) == 4 and counts.tolist() == [4, 4, 4, 4]


def test_epoch_sees_every_image_once_when_sizes_divide():
    sampler = PKBatchSampler(LABELS, classes_per_batch=3, samples_per_class=4, seed=1)
    seen = [i for batch in sampler for i in batch]
    assert sorted(seen) == list(range(len(LABELS)))


def test_order_depends_on_seed_and_epoch_only():
    a = PKBatchSampler(LABELS, 4, 4, seed=7)
    b = PKBatchSampler(LABELS, 4, 4, seed=7)
    np.random.seed(123)  # the global RNG plays no part
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(PKBatchSampler(LABELS, 4, 4, seed=8)) != list(PKBatchSampler(LABELS, 4, 4, seed=7))


def test_uneven_classes_keep_a_fixed_epoch_length():
    labels = np.repeat(np.arange(7), [2, 3, 5, 9, 4, 11, 6])
    sampler = PKBatchSampler(labels, classes_per_batch=3, samples_per_class=4, seed=0)
    lengths = set()
    for epoch in range(5):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        lengths.add(len(batches))
        for batch in batches:
            classes, counts = np.unique(labels[batch], return_counts=True)
            assert len(classes) == 3 and set(counts) == {4}
    assert lengths == {len(sampler)}


def test_ranks_take_disjoint_equal_shares():
    full = PKBatchSampler(LABELS, 2, 4, seed=5).epoch_batches(0)
    shards = [list(PKBatchSampler(LABELS, 2, 4, seed=5, rank=r, world_size=3)) for r in range(3)]
    assert len({len(s) for s in shards}) == 1
    assert shards[1] == full[1::3][: len(shards[1])]
    flat = [tuple(b) for s in shards for b in s]
    assert len(flat) == len(set(flat))


def test_epoch_wrapper_skips_and_caps():
    inner = PKBatchSampler(LABELS, 2, 4, seed=2)
    wrapper = EpochBatchSampler(inner, max_batches=5)
    wrapper.set_epoch(3, start_batch=2)
    inner.set_epoch(3)
    assert list(wrapper) == list(itertools.islice(iter(inner), 2, 5))
    assert len(wrapper) == 5
    state = wrapper.state_dict()
    other = EpochBatchSampler(PKBatchSampler(LABELS, 2, 4, seed=99))
    other.load_state_dict(state)
    other.set_epoch(3)
    assert list(other)[:5] == list(itertools.islice(iter(inner), 0, 5))


def test_bad_configurations():
    with pytest.raises(ConfigError, match="'data.classes_per_batch': 13 exceeds the 12 training classes"):
        PKBatchSampler(LABELS, 13, 2)
    with pytest.raises(ConfigError, match="'data.samples_per_class': must be >= 2"):
        PKBatchSampler(LABELS, 2, 1)
    with pytest.raises(DatasetError, match=r"class\(es\) \[2\] have a single image"):
        PKBatchSampler(np.array([0, 0, 1, 1, 2]), 2, 2)
