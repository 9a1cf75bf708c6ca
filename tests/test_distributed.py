"""The cross-rank gather (:mod:`dmlkit.distributed`) in two real gloo processes, against a hand loop."""

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dmlkit.distributed import BatchGather

WORLD = 2


def shard(rank: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rank ``rank``'s part of a global batch of 4: features (2, 3), a score (2,), labels (2,)."""
    g = torch.Generator().manual_seed(rank)
    return torch.randn(2, 3, generator=g), torch.randn(2, generator=g), torch.tensor([10 * rank, 10 * rank + 1])


def loss_of(features: torch.Tensor, score: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """A loss that mixes the whole batch (so each example's gradient depends on the others)."""
    weight = torch.arange(1.0, 13.0).reshape(4, 3)
    return (features.pow(2) * weight).sum() * score.sum() + (labels.float() * score).sum()


def worker(rank: int, port: int, out) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        features, score, labels = (t.clone() for t in shard(rank))
        features.requires_grad_(True)
        score.requires_grad_(True)
        gathered = BatchGather(rank, WORLD, "global")(features, score, labels)
        loss_of(*gathered).backward()
        plain = [t.detach().numpy() for t in gathered]  # numpy: a tensor in a queue outlives its process badly
        out.put((rank, plain, features.grad.numpy(), score.grad.numpy(), float(loss_of(*gathered))))
    finally:
        dist.destroy_process_group()


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
