"""One batch across several processes: how a method's loss sees the global batch under DDP.

With ``trainer.distributed_batch: global`` (the default) the training batch of a step is drawn once
for all processes — its per-batch counts (P classes, M clusters, queries) are the config's times the
number of processes — and each process loads and embeds a contiguous 1/N of it (whole classes,
clusters or neighbourhoods). A method then calls :meth:`BatchGather.__call__` on what it computed
from its shard (embeddings, features, labels) and computes its loss on the concatenation, in the
order of the single-process batch, on every process alike.

**Gradients.** Every process computes the same loss on the same gathered tensors; only its own
shard carries a path back into the model. The gradient reaching the shard is multiplied by N in the
backward pass, so that after DDP averages the parameters' gradients over the N processes, the
update is that of one process training on the whole batch: parameters before the gather (the
backbone, the embedding head) get the sum of the shards' gradients, parameters after it (proxies,
the MPN, DVML's decoder) the gradient of the global loss, which every process has computed in full.
The ×N multiply takes the place of the reduce-scatter of a general differentiable all-gather, which
is exact only because the loss is identical on every process [decision: it saves a collective per
step and works on gloo, which has no reduce-scatter].

``per_rank`` restores independent batches: each process draws whole batches of the config's size
and its loss sees only its own; DDP averages the gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist

DistributedBatch = Literal["global", "per_rank"]
DISTRIBUTED_BATCH: tuple[str, ...] = ("global", "per_rank")


class _GatherShards(torch.autograd.Function):
    """All-gather of equal shards along dim 0; the backward returns N × the gradient of this shard."""

    @staticmethod
    def forward(ctx, local: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:  # type: ignore[override]
        local = local.contiguous()
        parts = [torch.empty_like(local) for _ in range(world_size)]
        dist.all_gather(parts, local)
        ctx.rank, ctx.world_size, ctx.n = rank, world_size, len(local)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        start = ctx.rank * ctx.n
        return grad[start : start + ctx.n] * ctx.world_size, None, None


@dataclass(frozen=True)
class BatchGather:
    """Gathers a step's shards into the global batch (identity for one process or ``per_rank``).

    Args:
        rank: This process's global rank.
        world_size: Number of processes.
        mode: ``global`` or ``per_rank`` (``trainer.distributed_batch``).
    """

    rank: int = 0
    world_size: int = 1
    mode: DistributedBatch = "global"

    @property
    def active(self) -> bool:
        """Whether a call communicates (several processes sharing one batch)."""
        return self.mode == "global" and self.world_size > 1

    @property
    def shards(self) -> int:
        """How many processes' shards make one batch: the factor on a batch source's per-batch counts."""
        return self.world_size if self.mode == "global" else 1

    def __call__(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The global batch of each tensor (dim 0 is the batch; every process passes the same shapes).

        Tensors of one dtype travel in one collective; a floating tensor keeps the gradient path to
        this process's shard (see the module docstring).
        """
        if not self.active:
            return tensors
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("BatchGather: several processes but no torch.distributed process group")
        out: list[torch.Tensor | None] = [None] * len(tensors)
        by_dtype: dict[torch.dtype, list[int]] = {}
        for i, t in enumerate(tensors):
            by_dtype.setdefault(t.dtype, []).append(i)
        for positions in by_dtype.values():
            flat = [tensors[i].reshape(len(tensors[i]), -1) for i in positions]
            widths = [f.shape[1] for f in flat]
            packed = _GatherShards.apply(torch.cat(flat, dim=1), self.rank, self.world_size)
            for i, part in zip(positions, packed.split(widths, dim=1), strict=True):
                out[i] = part.reshape(len(packed), *tensors[i].shape[1:])
        return tuple(out)  # type: ignore[arg-type]
