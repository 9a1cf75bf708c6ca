"""Adapter from pytorch-metric-learning (PML) losses and miners to the dmlkit loss contract.

Decisions made here, for every PML-backed loss:

* **No silent normalisation.** PML's distance objects L2-normalise embeddings unless told
  otherwise; every dmlkit factory builds its distance with an explicit ``normalize`` (or states
  in its docstring that the formula fixes it, e.g. cosine similarity).
* **Precision.** The loss runs with autocast disabled on fp32 embeddings (fp64 stays fp64 for
  losses without parameters), so proxies and learnable margins stay fp32 and the large
  exponentials of Multi-Similarity/Proxy-Anchor cannot overflow in half precision.
* **Miners.** A loss may hold a PML miner; its index tuple is passed to the PML loss. A config's
  ``loss.miner: {name: ..., ...}`` replaces the built-in one (see :func:`dmlkit.losses.build_loss`).
* **Reference set.** ``ref_emb``/``ref_labels`` go through to PML (its ``ref_emb`` argument);
  losses that cannot use one raise :class:`NotImplementedError` naming the loss.
"""

from __future__ import annotations

from typing import Any

import torch
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.reducers import AvgNonZeroReducer, BaseReducer, MeanReducer

from dmlkit.losses import validate
from dmlkit.losses.base import MetricLoss

REDUCTIONS = ("mean", "nonzero_mean")
"""``mean``: average over every mined pair/triplet; ``nonzero_mean``: over those with loss > 0."""


def lp_distance(normalize: bool, squared: bool = False) -> LpDistance:
    """Euclidean distance (squared if asked) on embeddings L2-normalised iff ``normalize``."""
    return LpDistance(normalize_embeddings=normalize, p=2, power=2 if squared else 1)


def reducer(reduction: str, key: str = "loss.reduction") -> BaseReducer:
    """The PML reducer for a :data:`REDUCTIONS` name."""
    validate.choice(key, reduction, REDUCTIONS)
    return MeanReducer() if reduction == "mean" else AvgNonZeroReducer()


def check_reference(name: str, ref_emb: torch.Tensor | None, ref_labels: torch.Tensor | None, supported: bool) -> None:
    """Raise if only one of ``ref_emb``/``ref_labels`` is given, or if loss ``name`` cannot use them."""
    if (ref_emb is None) != (ref_labels is None):
        raise ValueError(f"loss {name!r}: pass ref_emb and ref_labels together (got only one)")
    if ref_emb is not None and not supported:
        raise NotImplementedError(
            f"loss {name!r} does not support a reference set (ref_emb/ref_labels); "
            "use a pair- or triplet-based loss for cross-batch memory or query-vs-reference training"
        )


def compute_dtype(embeddings: torch.Tensor, keep_float64: bool) -> torch.dtype:
    """fp64 if the input is fp64 and the loss allows it, else fp32 (half precision is promoted)."""
    return torch.float64 if keep_float64 and embeddings.dtype == torch.float64 else torch.float32


class PMLLoss(MetricLoss):
    """A PML loss, optionally preceded by a PML miner, computed in fp32 (or fp64).

    Args:
        loss: A ``pytorch_metric_learning.losses`` module.
        name: The registry name, for error messages.
        miner: A ``pytorch_metric_learning.miners`` module, or ``None`` (the loss's own
            default tuples: all pairs/triplets for pair and triplet losses).
        lr_mult: LR factor of the loss's own parameters (proxies, learnable β).
        normalize_input: L2-normalise embeddings before PML sees them (for PML losses that
            normalise only some of their operands).
        supports_ref: Whether the PML loss accepts ``ref_emb``/``ref_labels``.
        takes_miner: Whether a config may give this loss a miner.
        keep_float64: Compute in fp64 when given fp64 (losses whose PML code casts its
            parameters to the input dtype set this to ``False``).
        miner_context: Defaults offered to a configured miner (``margin``, ``squared``,
            ``normalize``), so that e.g. a semi-hard miner mines with the loss's own distance.
    """

    def __init__(
        self,
        loss: torch.nn.Module,
        name: str,
        miner: torch.nn.Module | None = None,
        lr_mult: float = 1.0,
        normalize_input: bool = False,
        supports_ref: bool = True,
        takes_miner: bool = True,
        keep_float64: bool = True,
        miner_context: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.loss = loss.float()
        self.miner = miner
        self.name = name
        self.lr_mult = lr_mult
        self.normalize_input = normalize_input
        self.supports_ref = supports_ref
        self.takes_miner = takes_miner
        self.keep_float64 = keep_float64
        self.miner_context = dict(miner_context or {})

    def mine(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...] | None:
        """The index tuple the miner picks on these (already fp32/fp64) embeddings, or ``None``."""
        if self.miner is None:
            return None
        return self.miner(embeddings, labels, ref_emb, ref_labels)

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_reference(self.name, ref_emb, ref_labels, self.supports_ref)
        dtype = compute_dtype(embeddings, self.keep_float64)
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            x = embeddings.to(dtype)
            ref = ref_emb.to(dtype) if ref_emb is not None else None
            if self.normalize_input:
                x = torch.nn.functional.normalize(x, dim=1)
                ref = torch.nn.functional.normalize(ref, dim=1) if ref is not None else None
            indices = self.mine(x, labels, ref, ref_labels)
            return self.loss(x, labels, indices, ref, ref_labels)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, lr_mult={self.lr_mult:g}"
