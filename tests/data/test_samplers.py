"""The P×K batch sampler: composition, epoch coverage, determinism, resume and rank sharding."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dmlkit.data.base import ArrayDataset, stack_batch
from dmlkit.data.samplers import EpochBatchSampler, PKBatchSampler, max_pk_batches
from dmlkit.errors import ConfigError, DatasetError

LABELS = np.random.default_rng(0).permutation(np.repeat(np.arange(12), 8))  # 12 classes × 8 images, shuffled
UNEVEN = np.repeat(np.arange(7), [2, 3, 5, 9, 4, 11, 6])


def check_composition(labels, batches, p, k):
    for batch in batches:
        assert len(batch) == p * k
        classes, counts = np.unique(labels[batch], return_counts=True)
        assert len(classes) == p and set(counts.tolist()) == {k}


def test_batches_are_p_classes_by_k_images():
    sampler = PKBatchSampler(LABELS, classes_per_batch=4, samples_per_class=4, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 12 * 8 // 4 // 4
    assert all(isinstance(i, int) for i in batches[0])
    check_composition(LABELS, batches, 4, 4)


def test_epoch_sees_every_image_once_when_sizes_divide():
    for p, k, seed in [(3, 4, 1), (4, 2, 2), (6, 8, 3), (12, 2, 4)]:
        sampler = PKBatchSampler(LABELS, classes_per_batch=p, samples_per_class=k, seed=seed)
        for epoch in range(3):
            sampler.set_epoch(epoch)
            seen = [i for batch in sampler for i in batch]
            assert sorted(seen) == list(range(len(LABELS)))


def test_uneven_and_small_classes():
    sampler = PKBatchSampler(UNEVEN, classes_per_batch=3, samples_per_class=4, seed=0)
    chunks = np.array([1, 1, 2, 3, 1, 3, 2])  # ⌈size / 4⌉
    assert len(sampler) == max_pk_batches(chunks, 3) == 13 // 3
    for epoch in range(5):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        check_composition(UNEVEN, batches, 3, 4)
        for batch in batches:
            for cls in np.unique(UNEVEN[batch]):
                members = [i for i in batch if UNEVEN[i] == cls]
                # a chunk holds distinct images whenever its class has at least K
                assert len(set(members)) == min(4, int((cls == UNEVEN).sum()))


def test_max_pk_batches_caps_a_dominant_class():
    labels = np.repeat(np.arange(3), [40, 4, 4])  # chunks of 2: 20, 2, 2 -> only 4 batches of 2 distinct classes
    assert max_pk_batches(np.array([20, 2, 2]), 2) == 4
    sampler = PKBatchSampler(labels, classes_per_batch=2, samples_per_class=2)
    batches = list(sampler)
    assert len(batches) == 4
    check_composition(labels, batches, 2, 2)
    assert all(0 in labels[b] for b in batches)  # the big class is in every batch


def test_order_depends_on_seed_and_epoch_only():
    a = PKBatchSampler(LABELS, 4, 4, seed=7)
    b = PKBatchSampler(LABELS, 4, 4, seed=7)
    np.random.seed(123)
    torch.manual_seed(123)
    before = (np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    assert list(a) == list(b)
    assert (np.random.get_state()[1] == before[0]).all() and torch.equal(torch.get_rng_state(), before[1])
    a.set_epoch(1)
    assert list(a) != list(b)
    b.set_epoch(1)
    assert list(a) == list(b) == PKBatchSampler(LABELS, 4, 4, seed=7).epoch_batches(1)
    assert list(PKBatchSampler(LABELS, 4, 4, seed=8)) != list(PKBatchSampler(LABELS, 4, 4, seed=7))


def test_resume_mid_epoch_from_state_dict():
    sampler = PKBatchSampler(LABELS, 2, 4, seed=5)
    sampler.set_epoch(2)
    full = list(sampler)
    it = iter(sampler)
    first = [next(it) for _ in range(5)]
    state = sampler.state_dict()
    assert state == {"epoch": 2, "batches_yielded": 5, "seed": 5}
    resumed = PKBatchSampler(LABELS, 2, 4, seed=0)  # the seed comes from the state
    resumed.load_state_dict(state)
    assert resumed.state_dict() == state
    resumed.set_epoch(2)  # a loop that calls set_epoch(resumed epoch) keeps the position
    rest = list(resumed)
    assert first + rest == full and rest == list(it)
    assert resumed.state_dict()["batches_yielded"] == len(resumed)
    assert list(resumed) == full  # the next pass of the same epoch starts at batch 0
    resumed.load_state_dict(state)
    resumed.set_epoch(3)  # another epoch starts at its first batch
    assert list(resumed) == sampler.epoch_batches(3)


def test_set_epoch_with_start_batch():
    sampler = PKBatchSampler(LABELS, 2, 4, seed=5)
    sampler.set_epoch(4, start_batch=7)
    assert list(sampler) == sampler.epoch_batches(4)[7:]
    with pytest.raises(ValueError, match="start_batch 99 outside"):
        sampler.set_epoch(4, start_batch=99)


def test_ranks_take_disjoint_equal_shares():
    full = PKBatchSampler(LABELS, 2, 4, seed=5).epoch_batches(0)
    assert len(full) == 12
    shards = [list(PKBatchSampler(LABELS, 2, 4, seed=5, rank=r, world_size=5)) for r in range(5)]
    assert [len(s) for s in shards] == [2] * 5  # 12 batches over 5 ranks: 2 each, 2 dropped
    assert shards[1] == full[1::5][:2]
    flat = [tuple(b) for s in shards for b in s]
    assert len(flat) == len(set(flat)) == 10
    for r in range(5):  # resuming works per rank
        sampler = PKBatchSampler(LABELS, 2, 4, seed=5, rank=r, world_size=5)
        sampler.load_state_dict({"epoch": 0, "batches_yielded": 1, "seed": 5})
        assert list(sampler) == shards[r][1:]
    with pytest.raises(ValueError, match="rank 2 outside world_size 2"):
        PKBatchSampler(LABELS, 2, 4, rank=2, world_size=2)


def test_with_a_dataloader():
    images = np.zeros((len(UNEVEN), 4, 4), dtype=np.uint8)
    dataset = ArrayDataset(images, UNEVEN, [str(c) for c in range(7)], transform=lambda im: torch.zeros(1, 4, 4))
    sampler = PKBatchSampler(dataset.labels, 3, 2, seed=1)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=stack_batch)
    batches = list(loader)
    assert len(batches) == len(loader) == len(sampler)
    assert batches[0]["image"].shape == (6, 1, 4, 4)
    for batch in batches:
        assert torch.equal(batch["label"], torch.as_tensor(UNEVEN[batch["index"].numpy()]))
        assert batch["label"].unique().numel() == 3


def test_epoch_wrapper_skips_and_caps():
    inner = PKBatchSampler(LABELS, 2, 4, seed=2)
    wrapper = EpochBatchSampler(inner, max_batches=5)
    wrapper.set_epoch(3, start_batch=2)
    assert list(wrapper) == inner.epoch_batches(3)[2:5]
    assert len(wrapper) == 5 and len(EpochBatchSampler(inner)) == len(inner) == 12
    state = wrapper.state_dict()
    other = EpochBatchSampler(PKBatchSampler(LABELS, 2, 4, seed=99))
    other.load_state_dict(state)
    other.set_epoch(3)
    assert list(other)[:5] == inner.epoch_batches(3)[:5]


def test_epoch_wrapper_owns_the_position():
    """The trainer restores the sampler state, then sets its own step count: no double skip."""
    inner = PKBatchSampler(LABELS, 2, 4, seed=2)
    inner.set_epoch(1)
    it = iter(inner)
    for _ in range(4):
        next(it)
    state = inner.state_dict()  # 4 batches handed out (maybe prefetched) ...
    wrapper = EpochBatchSampler(PKBatchSampler(LABELS, 2, 4, seed=2))
    wrapper.load_state_dict(state)
    wrapper.set_epoch(1, start_batch=3)  # ... of which 3 were trained on
    assert list(wrapper) == inner.epoch_batches(1)[3:]


def test_bad_configurations():
    with pytest.raises(ConfigError, match="'data.classes_per_batch': 13 exceeds the 12 training classes"):
        PKBatchSampler(LABELS, 13, 2)
    with pytest.raises(ConfigError, match="'data.classes_per_batch': must be >= 1"):
        PKBatchSampler(LABELS, 0, 2)
    with pytest.raises(ConfigError, match="'data.samples_per_class': must be >= 2"):
        PKBatchSampler(LABELS, 2, 1)


def test_single_image_classes():
    labels = np.array([0, 0, 1, 1, 2, 3, 3])
    with pytest.raises(
        DatasetError, match=r"class\(es\) 2 \('Greek/character02'\) have a single image.*skip_singletons"
    ):
        PKBatchSampler(labels, 2, 2, class_names=["a", "b", "Greek/character02", "c"])
    with pytest.warns(UserWarning, match=r"class\(es\) 2 have a single image .*skipped"):
        sampler = PKBatchSampler(labels, 3, 2, skip_singletons=True)
    batches = list(sampler)
    assert len(batches) == 1 and 4 not in batches[0]
    with pytest.warns(UserWarning), pytest.raises(ConfigError, match="exceeds the 3 training classes with at least 2"):
        PKBatchSampler(labels, 4, 2, skip_singletons=True)
