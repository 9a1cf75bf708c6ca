"""The cross-rank gather (:mod:`dmlkit.distributed`) in two real gloo processes, against a hand loop."""

import socket

import pytest
import torch
import torch.multiprocessing as mp

from dmlkit.distributed import BatchGather
from gather_worker import WORLD, loss_of, shard, worker


@pytest.fixture(scope="module")
def results():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(r, port, out)) for r in range(WORLD)]
    for p in procs:
        p.start()
    got = {}
    for _ in procs:
        rank, gathered, f_grad, s_grad, loss = out.get(timeout=120)
        got[rank] = ([torch.from_numpy(t) for t in gathered], torch.from_numpy(f_grad), torch.from_numpy(s_grad), loss)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return got


def test_every_rank_gets_the_global_batch_in_rank_order(results):
    whole = [torch.cat(parts) for parts in zip(*(shard(r) for r in range(WORLD)), strict=True)]
    for rank in range(WORLD):
        gathered = results[rank][0]
        assert [t.dtype for t in gathered] == [torch.float32, torch.float32, torch.int64]
        for got, want in zip(gathered, whole, strict=True):
            assert torch.equal(got, want)


def test_each_shard_gets_world_size_times_its_gradient_so_that_ddp_mean_is_the_whole_gradient(results):
    features, score, labels = (torch.cat(p) for p in zip(*(shard(r) for r in range(WORLD)), strict=True))
    features.requires_grad_(True)
    score.requires_grad_(True)
    loss_of(features, score, labels).backward()
    for rank in range(WORLD):
        part = slice(2 * rank, 2 * rank + 2)
        _, f_grad, s_grad, loss = results[rank]
        assert loss == pytest.approx(float(loss_of(features, score, labels).detach()))
        assert torch.allclose(f_grad, WORLD * features.grad[part])
        assert torch.allclose(s_grad, WORLD * score.grad[part])
    # what DDP does with them: the mean over the ranks is the single-process gradient of every example
    mean = torch.cat([results[r][1] for r in range(WORLD)]) / WORLD
    assert torch.allclose(mean, features.grad)


def test_one_process_and_per_rank_gather_nothing():
    x = torch.randn(3, 2)
    for gather in (BatchGather(), BatchGather(0, 2, "per_rank")):
        assert not gather.active and gather(x)[0] is x
    assert BatchGather(0, 2, "per_rank").shards == 1 and BatchGather(1, 4).shards == 4
