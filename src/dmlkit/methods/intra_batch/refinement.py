"""Test-time refinement through the MPN (the official code's "pseudo test" mode), an extra.

Every test embedding is refined by passing a small graph through the trained message passing
network: the embedding itself and its nearest neighbours among its *k-reciprocal expansion*
(the re-ranking neighbourhood of Zhong et al., CVPR 2017, as the reference builds it):

* R(i, k) = the j among i's k + 1 nearest (i included) that have i among their own k + 1 nearest;
* R*(i) = R(i, k1) ∪ every R(c, round(k1 / 2)), c ∈ R(i, k1), that shares more than 2/3 of its
  points with R(i, k1).

The group of i is i followed by the ``group_size − 1`` members of R*(i) nearest to i, filled up with
i's plain nearest neighbours when R*(i) is smaller (reference: k1 = 30, groups of 7). The refined
embedding of i is its MPN output in that group, L2-normalised per layer (all layers concatenated
when the MPN concatenates them). The reported metrics stay the backbone's: this is an extra.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dmlkit.evaluation.knn import exact_knn
from dmlkit.methods.intra_batch.mpn import MessagePassingNetwork


def _neighbour_lists(embeddings: torch.Tensor, k: int) -> np.ndarray:
    """(n, k + 1) indices: each point itself, then its k nearest others (Euclidean, ties by index)."""
    _, idx = exact_knn(embeddings, None, k)
    own = torch.arange(len(embeddings), device=idx.device)[:, None]
    return torch.cat([own, idx], dim=1).cpu().numpy()


def _reciprocal(knn: np.ndarray, k: int) -> np.ndarray:
    """(n, k + 1) mask: whether i's j-th list entry (of the first k + 1) has i among its own first k + 1."""
    head = knn[:, : k + 1]
    return (head[head] == np.arange(len(knn))[:, None, None]).any(axis=2)


def k_reciprocal_groups(embeddings: torch.Tensor, k1: int = 30, group_size: int = 7) -> np.ndarray:
    """(n, group_size) indices of each point's refinement group, the point itself first (see the module).

    Args:
        embeddings: (n, dim) test embeddings; needs n > k1.
        k1: Neighbourhood size of the k-reciprocal sets (30).
        group_size: Points per group, the query included (7); at most k1 + 1.
    """
    n = len(embeddings)
    if not 1 <= k1 < n:
        raise ValueError(f"k1 must be in 1..{n - 1} (the number of embeddings − 1), got {k1}")
    if not 1 <= group_size <= k1 + 1:
        raise ValueError(f"group_size must be in 1..{k1 + 1} (k1 + 1), got {group_size}")
    half = int(np.around(k1 / 2))
    knn = _neighbour_lists(embeddings.float(), k1)
    near = _reciprocal(knn, k1)
    near_half = _reciprocal(knn, half)
    x = embeddings.detach().float().cpu()
    groups = np.empty((n, group_size), dtype=np.int64)
    for i in range(n):
        reciprocal = knn[i][near[i]]
        members = set(reciprocal.tolist())
        expansion = set(members)
        for c in reciprocal:
            candidate = knn[c, : half + 1][near_half[c]]
            if len(members.intersection(candidate.tolist())) > 2 / 3 * len(candidate):
                expansion.update(candidate.tolist())
        expansion.discard(i)
        others = np.fromiter(expansion, dtype=np.int64, count=len(expansion))
        order = np.lexsort((others, ((x[others] - x[i]) ** 2).sum(1).numpy()))  # by distance, ties by index
        chosen = [i, *others[order][: group_size - 1].tolist()]
        for j in knn[i, 1:]:  # fill up with plain nearest neighbours
            if len(chosen) == group_size:
                break
            if j not in chosen:
                chosen.append(int(j))
        groups[i] = chosen
    return groups


@torch.no_grad()
def refine_embeddings(
    mpn: MessagePassingNetwork, embeddings: torch.Tensor, k1: int = 30, group_size: int = 7, chunk: int = 4096
) -> torch.Tensor:
    """(n, out_dim) refined embeddings: each point's MPN output within its k-reciprocal group (eval mode).

    Runs on the MPN's device, wherever ``embeddings`` are (the evaluation gathers them on the CPU).
    """
    embeddings = embeddings.to(next(mpn.parameters()).device)
    groups = torch.as_tensor(k_reciprocal_groups(embeddings, k1, group_size), device=embeddings.device)
    was_training = mpn.training
    mpn.eval()
    try:
        parts = []
        for start in range(0, len(groups), chunk):
            graphs = embeddings[groups[start : start + chunk]].float()  # (c, group_size, dim), one graph each
            outputs = [F.normalize(h[:, 0], dim=1) for h in mpn.layer_outputs(graphs)]
            parts.append(torch.cat(outputs, dim=1) if mpn.concat else outputs[-1])
        return torch.cat(parts)
    finally:
        mpn.train(was_training)
