"""V2V-style 3D CNN: lifted volume (B, C, M, M, M) -> one 3D heatmap per keypoint (B, N, M, M, M).

An encoder-decoder with residual 3D blocks and additive skips. The number of pooling levels adapts
to M: halve while M stays even and the coarsest level keeps at least `min_size` voxels, up to
`max_levels` - 72 -> 36 -> 18 -> 9, 32 -> 16 -> 8 -> 4, 24 -> 12 -> 6 -> 3 (the original V2V's
five levels need M divisible by 32, which M = 72 is not).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .features import group_norm


def pooling_levels(size: int, max_levels: int = 3, min_size: int = 3) -> int:
    """How many times `size` can be halved exactly while staying >= min_size (at most max_levels)."""
    levels = 0
    while levels < max_levels and size % 2 == 0 and size // 2 >= min_size:
        size //= 2
        levels += 1
    return levels


class ResBlock3D(nn.Module):
    """(B, C_in, D, D, D) -> (B, C_out, D, D, D): two 3x3x3 convs with GroupNorm and a residual."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=False),
            group_norm(out_channels, 8),
            nn.ReLU(inplace=True),
            nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False),
            group_norm(out_channels, 8),
        )
        self.skip = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Sequential(nn.Conv3d(in_channels, out_channels, 1, bias=False), group_norm(out_channels, 8))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class VolumeNet(nn.Module):
    """(B, in_channels, M, M, M) -> (B, out_channels, M, M, M) heatmap logits.

    widths[l] is the channel count at pooling level l (the last width repeats if M allows more
    levels than widths are given). Full resolution uses single convolutions only: it dominates the
    cost on a CPU, and the coarse levels carry the receptive field.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        size: int,
        widths: Sequence[int] = (16, 32, 64, 64),
        max_levels: int = 3,
    ) -> None:
        super().__init__()
        self.size = size
        self.levels = pooling_levels(size, max_levels)
        widths = list(widths) + [widths[-1]] * max(0, self.levels + 1 - len(widths))
        self.widths = widths[: self.levels + 1]
        w = self.widths
        self.front = nn.Sequential(
            nn.Conv3d(in_channels, w[0], 3, padding=1, bias=False), group_norm(w[0], 8), nn.ReLU(inplace=True)
        )
        self.encoder = nn.ModuleList(
            nn.Sequential(nn.MaxPool3d(2), ResBlock3D(w[level], w[level + 1])) for level in range(self.levels)
        )
        self.bottom = ResBlock3D(w[-1], w[-1])
        self.upsample = nn.ModuleList(
            nn.Sequential(
                nn.ConvTranspose3d(w[level + 1], w[level], 2, stride=2, bias=False),
                group_norm(w[level], 8),
                nn.ReLU(inplace=True),
            )
            for level in reversed(range(self.levels))
        )
        self.decoder = nn.ModuleList(
            (
                ResBlock3D(w[level], w[level])
                if level > 0
                else nn.Sequential(
                    nn.Conv3d(w[0], w[0], 3, padding=1, bias=False), group_norm(w[0], 8), nn.ReLU(inplace=True)
                )
            )
            for level in reversed(range(self.levels))
        )
        self.head = nn.Conv3d(w[0], out_channels, 1)

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        if tuple(volume.shape[-3:]) != (self.size,) * 3:
            raise ValueError(f"VolumeNet was built for M={self.size}, got a volume of {tuple(volume.shape[-3:])}")
        x = self.front(volume)
        skips = [x]
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        x = self.bottom(x)
        for up, block, skip in zip(self.upsample, self.decoder, reversed(skips[:-1])):
            x = block(up(x) + skip)
        return self.head(x)
