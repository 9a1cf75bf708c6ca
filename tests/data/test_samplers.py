"""Training batches: the P×K source (composition, coverage, determinism) and the epoch sampler (ranks, resume)."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dmlkit.data.base import ArrayDataset, stack_batch
from dmlkit.data.samplers import BatchSource, EpochBatchSampler, PKBatches, max_pk_batches
from dmlkit.errors import ConfigError, DatasetError

LABELS = np.random.default_rng(0).permutation(np.repeat(np.arange(12), 8))  # 12 classes × 8 images, shuffled
UNEVEN = np.repeat(np.arange(7), [2, 3, 5, 9, 4, 11, 6])


def check_composition(labels, batches, p, k):
    for batch in batches:
        assert len(batch) == p * k
        classes, counts = np.unique(labels[batch], return_counts=True)
        assert len(classes) == p and set(counts.tolist()) == {k}


def test_batches_are_p_classes_by_k_images():
    source = PKBatches(LABELS, classes_per_batch=4, samples_per_class=4, seed=3)
    assert isinstance(source, BatchSource)
    batches = source.batches(0)
    assert len(batches) == len(source) == 12 * 8 // 4 // 4
    assert all(isinstance(i, int) for i in batches[0])
    check_composition(LABELS, batches, 4, 4)


def test_epoch_sees_every_image_once_when_sizes_divide():
    for p, k, seed in [(3, 4, 1), (4, 2, 2), (6, 8, 3), (12, 2, 4)]:
        source = PKBatches(LABELS, classes_per_batch=p, samples_per_class=k, seed=seed)
        for epoch in range(3):
            seen = [i for batch in source.batches(epoch) for i in batch]
            assert sorted(seen) == list(range(len(LABELS)))


def test_uneven_and_small_classes():
    source = PKBatches(UNEVEN, classes_per_batch=3, samples_per_class=4, seed=0)
    chunks = np.array([1, 1, 2, 3, 1, 3, 2])  # ⌈size / 4⌉
    assert len(source) == max_pk_batches(chunks, 3) == 13 // 3
    for epoch in range(5):
        batches = source.batches(epoch)
        assert len(batches) == len(source)
        check_composition(UNEVEN, batches, 3, 4)
        for batch in batches:
            for cls in np.unique(UNEVEN[batch]):
                members = [i for i in batch if UNEVEN[i] == cls]
                # a chunk holds distinct images whenever its class has at least K
                assert len(set(members)) == min(4, int((cls == UNEVEN).sum()))


def test_max_pk_batches_caps_a_dominant_class():
    labels = np.repeat(np.arange(3), [40, 4, 4])  # chunks of 2: 20, 2, 2 -> only 4 batches of 2 distinct classes
    assert max_pk_batches(np.array([20, 2, 2]), 2) == 4
    batches = PKBatches(labels, classes_per_batch=2, samples_per_class=2).batches(0)
    assert len(batches) == 4
    check_composition(labels, batches, 2, 2)
    assert all(0 in labels[b] for b in batches)  # the big class is in every batch


def test_order_depends_on_seed_and_epoch_only():
    a = PKBatches(LABELS, 4, 4, seed=7)
    b = PKBatches(LABELS, 4, 4, seed=7)
    np.random.seed(123)
    torch.manual_seed(123)
    before = (np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    assert a.batches(0) == b.batches(0)
    assert (np.random.get_state()[1] == before[0]).all() and torch.equal(torch.get_rng_state(), before[1])
    assert a.batches(1) != b.batches(0)
    assert PKBatches(LABELS, 4, 4, seed=8).batches(0) != a.batches(0)


def test_set_epoch_with_start_batch_skips_without_drawing_differently():
    source = PKBatches(LABELS, 2, 4, seed=5)
    sampler = EpochBatchSampler(source)
    sampler.set_epoch(4, start_batch=7)
    assert list(sampler) == source.batches(4)[7:]
    sampler.set_epoch(4)
    assert list(sampler) == source.batches(4)  # a new pass starts at batch 0
    with pytest.raises(ValueError, match="start_batch 99 outside"):
        sampler.set_epoch(4, start_batch=99)


def test_ranks_take_disjoint_equal_shares_and_resume_per_rank():
    source = PKBatches(LABELS, 2, 4, seed=5)
    full = source.batches(0)
    assert len(full) == 12
    shards = [list(EpochBatchSampler(source, rank=r, world_size=5)) for r in range(5)]
    assert [len(s) for s in shards] == [2] * 5  # 12 batches over 5 ranks: 2 each, 2 dropped
    assert shards[1] == full[1::5][:2]
    flat = [tuple(b) for s in shards for b in s]
    assert len(flat) == len(set(flat)) == 10
    for r in range(5):
        sampler = EpochBatchSampler(source, rank=r, world_size=5)
        sampler.set_epoch(0, start_batch=1)
        assert list(sampler) == shards[r][1:]
    with pytest.raises(ValueError, match="rank 2 outside world_size 2"):
        EpochBatchSampler(source, rank=2, world_size=2)


class Lazy:
    """A source that draws each batch when asked, counting the draws."""

    def __init__(self):
        self.drawn = 0

    def __len__(self):
        return 10

    def batches(self, epoch):
        for b in range(10):
            self.drawn += 1
            yield [epoch * 100 + b]


def test_the_cap_and_the_ranks_apply_to_any_source():
    source = Lazy()
    sampler = EpochBatchSampler(source, rank=1, world_size=3, max_batches=2)
    assert len(sampler) == 2
    sampler.set_epoch(2, start_batch=1)
    assert list(sampler) == [[204]]  # rank 1 takes batches 1, 4, 7; capped at 2; started at its 2nd
    assert source.drawn <= 5  # nothing past the last batch this rank needs is drawn


def test_with_a_dataloader():
    images = np.zeros((len(UNEVEN), 4, 4), dtype=np.uint8)
    dataset = ArrayDataset(images, UNEVEN, [str(c) for c in range(7)], transform=lambda im: torch.zeros(1, 4, 4))
    sampler = EpochBatchSampler(PKBatches(dataset.labels, 3, 2, seed=1))
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=stack_batch)
    batches = list(loader)
    assert len(batches) == len(loader) == len(sampler)
    assert batches[0]["image"].shape == (6, 1, 4, 4)
    for batch in batches:
        assert torch.equal(batch["label"], torch.as_tensor(UNEVEN[batch["index"].numpy()]))
        assert batch["label"].unique().numel() == 3


def test_bad_configurations():
    with pytest.raises(ConfigError, match="'data.classes_per_batch': 13 exceeds the 12 training classes"):
        PKBatches(LABELS, 13, 2)
    with pytest.raises(ConfigError, match="'data.classes_per_batch': must be >= 1"):
        PKBatches(LABELS, 0, 2)
    with pytest.raises(ConfigError, match="'data.samples_per_class': must be >= 2"):
        PKBatches(LABELS, 2, 1)


def test_single_image_classes():
    labels = np.array([0, 0, 1, 1, 2, 3, 3])
    with pytest.raises(
        DatasetError, match=r"class\(es\) 2 \('Greek/character02'\) have a single image.*skip_singletons"
    ):
        PKBatches(labels, 2, 2, class_names=["a", "b", "Greek/character02", "c"])
    with pytest.warns(UserWarning, match=r"class\(es\) 2 have a single image .*skipped"):
        source = PKBatches(labels, 3, 2, skip_singletons=True)
    batches = source.batches(0)
    assert len(batches) == 1 and 4 not in batches[0]
    with pytest.warns(UserWarning), pytest.raises(ConfigError, match="exceeds the 3 training classes with at least 2"):
        PKBatches(labels, 4, 2, skip_singletons=True)


def test_sharded_batches_are_the_single_process_batches_split_in_order():
    """``trainer.distributed_batch: global``: every rank sees every batch and takes its contiguous
    part (whole classes), with the augmentation seeds the single process gives the same items."""
    one = PKBatches(LABELS, 4, 2, seed=3)
    two = PKBatches(LABELS, 2, 2, seed=3, shards=2)  # 2 classes per process x 2 processes
    assert two.batches(1) == one.batches(1)
    single = EpochBatchSampler(one, seed=7)
    single.set_epoch(1)
    ranks = [EpochBatchSampler(two, rank=r, world_size=2, seed=7, shard=True) for r in range(2)]
    for sampler in ranks:
        sampler.set_epoch(1)
    whole = list(single)
    parts = [list(s) for s in ranks]
    assert len(ranks[0]) == len(single) == len(one)
    assert [a + b for a, b in zip(*parts, strict=True)] == whole  # (index, seed) pairs: seeds too
    for part in parts[0]:
        assert len({LABELS[i] for i, _ in part}) == 2  # whole classes on each rank
    resumed = EpochBatchSampler(two, rank=1, world_size=2, seed=7, shard=True)
    resumed.set_epoch(1, start_batch=2)
    assert list(resumed) == parts[1][2:]


def test_a_batch_that_does_not_split_across_the_processes_is_refused():
    sampler = EpochBatchSampler(Lazy(), rank=0, world_size=2, shard=True)  # batches of one index
    with pytest.raises(ConfigError, match=r"training batch 0 of epoch 0 has 1 images.* 2 processes.*per_rank"):
        list(sampler)


def test_too_many_classes_for_all_processes_names_the_product():
    with pytest.raises(ConfigError, match=r"'data.classes_per_batch': 8 per process x 2 processes = 16 classes"):
        PKBatches(LABELS, 8, 2, shards=2)  # 12 classes
    assert len(PKBatches(LABELS, 6, 2, shards=2).batches(0)[0]) == 24


class Draw(torch.utils.data.Dataset):
    """An item is a draw from torch's CPU generator (as a random transform makes)."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return float(torch.rand(()))


def test_seeded_items_draw_from_their_seed_and_leave_the_process_rng_alone():
    from dmlkit.data.samplers import SeededItems

    items = SeededItems(Draw())
    expected = []
    for seed in (3, 4, 5):
        torch.manual_seed(seed)
        expected.append(float(torch.rand(())))
    torch.manual_seed(123)
    before = torch.get_rng_state()
    assert (
        items.__getitems__([(0, 3), (1, 4), (2, 5)]) == expected == [items[(i, s)] for i, s in ((0, 3), (1, 4), (2, 5))]
    )
    assert torch.equal(torch.get_rng_state(), before)
    plain = items[7]  # a plain index draws from the process's RNG, as the dataset itself would
    torch.set_rng_state(before)
    assert plain == float(torch.rand(()))
