"""The two gloo processes of tests/test_distributed.py (a module of its own, importable by name in the
spawned processes, which cannot import a test module)."""

import torch
import torch.distributed as dist

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
