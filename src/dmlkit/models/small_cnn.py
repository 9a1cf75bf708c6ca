"""A small convolutional backbone for 8×8 to 64×64 images (sklearn digits, MNIST, Omniglot)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class HalveAtLeastOne(nn.Module):
    """2×2 max pooling (``ceil_mode``) that leaves maps of height or width 1 untouched.

    So any ``depth`` works on any input size: the map shrinks 8 → 4 → 2 → 1 → 1 and never to 0×0.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < 2:
            return x
        return F.max_pool2d(x, 2, ceil_mode=True)


class SmallCNN(nn.Module):
    """``depth`` blocks of conv3×3–BN–ReLU; every block but the last halves the resolution.

    Channels double every block from ``width``, so the output is a feature map with
    ``width * 2**(depth - 1)`` channels (128 with the defaults): 2×2 for 8×8 digits,
    7×7 for 28×28 MNIST/Omniglot, 16×16 for 64×64. Pooling stops at 1×1 (see
    :class:`HalveAtLeastOne`), so deeper nets also work on 8×8 inputs.

    Args:
        in_channels: Input channels (1 for gray images, 3 for colour; any positive number works).
        width: Channels of the first block (default 32).
        depth: Number of blocks (default 3).
    """

    def __init__(self, in_channels: int = 1, width: int = 32, depth: int = 3) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("width", width), ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(depth):
            out = width * 2**i
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            if i < depth - 1:
                layers.append(HalveAtLeastOne())
            channels = out
        self.layers = nn.Sequential(*layers)
        self.in_channels = in_channels
        self.feature_dim = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) images → (B, feature_dim, ⌈H/2^(depth-1)⌉, ...) feature map."""
        return self.layers(x)
