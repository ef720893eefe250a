"""A small trainable feature backbone used when the generator supplies no features (render views).

It mimics what the SV3D decoder taps provide: several layers at several resolutions, coarse to
fine, so the aggregator and everything after it run unchanged on either source.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def group_norm(channels: int, max_groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= max_groups that divides `channels`."""
    groups = max(g for g in range(1, max_groups + 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


def conv_block(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv -> GroupNorm -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        group_norm(out_channels, 8),
        nn.ReLU(inplace=True),
    )


class FeatureCNN(nn.Module):
    """Images (N, 3, H, W) in [0, 1] -> decoder taps [(N, widths[-1], H/8, W/8), ..., (N, widths[0], H/2, W/2)].

    An encoder halves the resolution len(widths) times; the decoder climbs back up with skip
    connections and every decoder level is returned, coarse to fine, like a U-Net decoder's taps.
    H and W must be divisible by 2**len(widths).
    """

    def __init__(self, widths: Sequence[int] = (32, 64, 96), in_channels: int = 3) -> None:
        super().__init__()
        widths = list(widths)
        self.widths = widths
        self.down = nn.ModuleList()
        previous = in_channels
        for width in widths:  # level l works at 1 / 2^(l+1)
            self.down.append(nn.Sequential(conv_block(previous, width, stride=2), conv_block(width, width)))
            previous = width
        self.up = nn.ModuleList()
        for level in range(len(widths) - 2, -1, -1):
            self.up.append(conv_block(widths[level + 1] + widths[level], widths[level]))

    @property
    def out_channels(self) -> tuple[int, ...]:
        """Channels of the returned taps, coarse to fine."""
        return tuple(reversed(self.widths))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = images * 2.0 - 1.0
        skips = []
        for stage in self.down:
            x = stage(x)
            skips.append(x)
        taps = [x]
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = nn.functional.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
            taps.append(x)
        return taps
