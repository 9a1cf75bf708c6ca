"""A small convolutional backbone for 8×8 to 64×64 images (digits, MNIST, Omniglot)."""

from __future__ import annotations

from torch import nn


class SmallCNN(nn.Module):
    """``depth`` blocks of conv3×3–BN–ReLU; all but the last halve the resolution.

    Channels double every block from ``width``; the output is a feature map with
    ``width * 2**(depth-1)`` channels (128 by default): 2×2 for 8×8 digits, 7×7 for 28×28.

    Args:
        in_channels: 1 for gray images, 3 for colour.
        width: Channels of the first block.
        depth: Number of blocks.
    """

    def __init__(self, in_channels: int = 1, width: int = 32, depth: int = 3) -> None:
        super().__init__()
        if width < 1 or depth < 1:
            raise ValueError(f"width and depth must be >= 1, got width={width}, depth={depth}")
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(depth):
            out = width * 2**i
            layers += [
                nn.Conv2d(channels, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            if i < depth - 1:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            channels = out
        self.layers = nn.Sequential(*layers)
        self.feature_dim = channels

    def forward(self, x):
        return self.layers(x)
