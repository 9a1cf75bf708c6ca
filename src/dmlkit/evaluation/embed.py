"""Embedding whole datasets with a trained model (evaluation, ``dmlkit embed``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from dmlkit.data.base import DMLDataset, stack_batch


@torch.no_grad()
def embed_dataset(
    embed: Callable[[torch.Tensor], torch.Tensor],
    dataset: DMLDataset,
    batch_size: int = 256,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    rank: int = 0,
    world_size: int = 1,
    gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, np.ndarray | None]:
    """Embed every item of ``dataset`` in order; returns float32 CPU embeddings and labels (``None`` when hidden).

    With ``world_size > 1`` each rank embeds a contiguous shard and ``gather`` (e.g.
    ``fabric.all_gather``) collects the padded shards; the result is identical on all ranks.
    The caller sets eval mode and autocast. The global RNGs are not used, so evaluating (more or
    less often) does not change a training run.
    """
    n = len(dataset)
    shards = np.array_split(np.arange(n), world_size)
    mine = shards[rank]
    loader = DataLoader(
        Subset(dataset, mine.tolist()),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=stack_batch,
        generator=torch.Generator(),  # the iterator's seed draw leaves the global RNG (the training's) alone
    )
    parts = [embed(batch["image"].to(device, non_blocking=True)).float() for batch in loader]
    local = torch.cat(parts) if parts else torch.empty(0, 0, device=device)
    if world_size > 1:
        if gather is None:
            raise ValueError("gather is required when world_size > 1")
        longest = max(len(s) for s in shards)
        padded = torch.zeros(longest, local.shape[1], device=local.device, dtype=local.dtype)
        padded[: len(local)] = local
        stacked = gather(padded)  # (world_size, longest, dim)
        local = torch.cat([stacked[r, : len(shards[r])] for r in range(world_size)])
    return local.cpu(), None if dataset.hides_labels else dataset.labels.copy()
