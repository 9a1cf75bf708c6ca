"""The message passing network of Seidenschwarz et al. (ICML 2021) over a fully connected batch graph.

Every embedding of a batch attends to every other one and to itself (self-loops). Per layer
(post-norm Transformer encoder layer, as the official code):

    h = LayerNorm(h + Dropout(Attention(h)))
    h = LayerNorm(h + Dropout(W2 · Dropout(ReLU(W1 h))))

Attention is multi-head scaled dot-product; the weights of target i over its sources j are
normalised with an implicit extra zero logit (``extra_zero``, the reference's normalisation):
``a_ij = exp(s_ij − m_i) / (Σ_j exp(s_ij − m_i) + exp(−m_i))`` with ``m_i = max(0, max_j s_ij)``,
so they sum to less than 1; ``softmax`` is the plain alternative. Messages are summed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NORMALISATIONS = ("extra_zero", "softmax")


def extra_zero_softmax(scores: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax of ``scores`` along ``dim`` with one more, implicit logit of value 0 (left out of the output).

    Example:
        >>> extra_zero_softmax(torch.tensor([0.0, 0.0])).tolist()  # three equal logits, two shown
        [0.3333333432674408, 0.3333333432674408]
    """
    m = scores.amax(dim=dim, keepdim=True).clamp_min(0)
    e = torch.exp(scores - m)
    return e / (e.sum(dim=dim, keepdim=True) + torch.exp(-m))


class BatchAttention(nn.Module):
    """Multi-head dot-product attention of every batch item over all items (self included)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.1, normalisation: str = "extra_zero") -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"the embedding size {dim} must be divisible by the number of heads {heads}")
        if normalisation not in NORMALISATIONS:
            raise ValueError(f"attention normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")
        self.heads, self.head_dim, self.normalisation = heads, dim // heads, normalisation
        self.q, self.k, self.v = (nn.Linear(dim, dim) for _ in range(3))
        for layer in (self.q, self.k, self.v):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """(..., N, dim) → (..., heads, N, head_dim)."""
        return x.view(*x.shape[:-1], self.heads, self.head_dim).transpose(-3, -2)

    def weights(self, h: torch.Tensor) -> torch.Tensor:
        """(..., heads, N, N) attention weights; row i holds target i's weights over the sources j."""
        scores = self._split(self.q(h)) @ self._split(self.k(h)).transpose(-1, -2) / math.sqrt(self.head_dim)
        return extra_zero_softmax(scores) if self.normalisation == "extra_zero" else torch.softmax(scores, dim=-1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(..., N, dim) → (..., N, dim) messages; leading dimensions are independent graphs."""
        messages = self.dropout(self.weights(h)) @ self._split(self.v(h))  # (..., heads, N, head_dim): sum over j
        return self.out(messages.transpose(-3, -2).reshape(h.shape))


class MessagePassingLayer(nn.Module):
    """Attention over the batch, then a feed-forward block; post-norm residuals with LayerNorm."""

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float = 0.1, normalisation: str = "extra_zero"):
        super().__init__()
        self.attention = BatchAttention(dim, heads, dropout, normalisation)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff_dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.norm1(h + self.dropout(self.attention(h)))
        return self.norm2(h + self.dropout(self.ff(h)))


class MessagePassingNetwork(nn.Module):
    """Input projection, ``layers`` message passing layers, BatchNorm neck and a bias-free classifier.

    Args:
        dim: Embedding size (512 in the paper).
        num_classes: Training classes.
        layers: Message passing layers (CUB 1, Cars 2, In-Shop 1).
        heads: Attention heads (CUB 2, Cars 8, In-Shop 4).
        ff_dim: Hidden size of the feed-forward block (2048 for 512-d).
        dropout: Dropout of attention weights, messages and the feed-forward block (0.1).
        concat: Classify the concatenation of every layer's output (Cars) instead of the last one.
        normalisation: ``extra_zero`` (reference) or ``softmax``.
    """

    def __init__(
        self,
        dim: int,
        num_classes: int,
        layers: int = 1,
        heads: int = 2,
        ff_dim: int | None = None,
        dropout: float = 0.1,
        concat: bool = False,
        normalisation: str = "extra_zero",
    ) -> None:
        super().__init__()
        self.input = nn.Linear(dim, dim)
        self.layers = nn.ModuleList(
            MessagePassingLayer(dim, heads, ff_dim or 4 * dim, dropout, normalisation) for _ in range(layers)
        )
        self.concat = bool(concat)
        out_dim = dim * layers if self.concat else dim
        self.neck = nn.BatchNorm1d(out_dim)
        nn.init.ones_(self.neck.weight)
        nn.init.zeros_(self.neck.bias)
        self.neck.bias.requires_grad_(False)  # the reference's BN neck has its bias frozen at 0
        self.classifier = nn.Linear(out_dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(..., N, dim) batch embeddings → every layer's (..., N, dim) output (leading dims: separate graphs)."""
        h = self.input(x)
        outputs = []
        for layer in self.layers:
            h = layer(h)
            outputs.append(h)
        return outputs

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(..., N, dim) batch embeddings → (..., N, out_dim) features after message passing."""
        outputs = self.layer_outputs(x)
        return torch.cat(outputs, dim=-1) if self.concat else outputs[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, dim) batch embeddings → (N, num_classes) logits."""
        return self.classifier(self.neck(self.features(x)))


def smoothed_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, smoothing: float = 0.1, temperature: float = 1.0
) -> torch.Tensor:
    """Cross-entropy of ``logits / temperature`` against ``(1 − ε)·onehot + ε/C`` targets, mean over the batch."""
    return F.cross_entropy(logits.float() / temperature, labels, label_smoothing=smoothing)
