"""Diffusion-Hyperfeatures-style aggregation of any number of feature layers into one map.

F_agg = sum_l softmax(w)_l * B_l(upsample(f_l)): a bottleneck B_l per layer (1x1 -> 3x3 -> 1x1 conv
with GroupNorm and a projected shortcut) maps C_l to C' channels, every layer is resized to one
resolution, and learnable mixing weights (initialised to 1, i.e. a uniform mix) are normalised by a
softmax so the network can select the layers that carry pose.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .features import group_norm


class Bottleneck(nn.Module):
    """(N, C_in, h, w) -> (N, C_out, h, w): ResNet bottleneck 1x1 -> 3x3 -> 1x1, GroupNorm(32)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = max(out_channels // 4, 8)
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, mid, 1, bias=False),
            group_norm(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1, bias=False),
            group_norm(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, 1, bias=False),
            group_norm(out_channels),
        )
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), group_norm(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class HyperfeatureAggregator(nn.Module):
    """Layers [(N, C_l, h_l, w_l)] -> (N, out_channels, h, w).

    (h, w) = `out_size`, or the largest tapped resolution when `out_size` is None. Layers are
    bottlenecked at their own resolution (cheaper for coarse, wide layers) and then resized
    bilinearly; fp16 inputs (cached features) are promoted to the bottleneck's dtype.
    """

    def __init__(
        self, in_channels: Sequence[int], out_channels: int, out_size: int | tuple[int, int] | None = None
    ) -> None:
        super().__init__()
        if len(in_channels) == 0:
            raise ValueError("the aggregator needs at least one feature layer")
        self.in_channels = tuple(int(c) for c in in_channels)
        self.out_channels = out_channels
        self.out_size = (out_size, out_size) if isinstance(out_size, int) else out_size
        self.bottlenecks = nn.ModuleList(Bottleneck(c, out_channels) for c in self.in_channels)
        self.mixing = nn.Parameter(torch.ones(len(self.in_channels)))

    def mixing_weights(self) -> torch.Tensor:
        """(L,) softmax-normalised layer weights."""
        return torch.softmax(self.mixing, dim=0)

    def forward(self, layers: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(layers) != len(self.bottlenecks):
            raise ValueError(f"expected {len(self.bottlenecks)} feature layers, got {len(layers)}")
        for layer, channels in zip(layers, self.in_channels):
            if layer.shape[1] != channels:
                raise ValueError(f"a feature layer has {layer.shape[1]} channels, the aggregator expects {channels}")
        size = self.out_size or max((tuple(layer.shape[-2:]) for layer in layers), key=lambda s: s[0] * s[1])
        weights = self.mixing_weights()
        dtype = self.mixing.dtype
        out = 0
        for index, (layer, bottleneck) in enumerate(zip(layers, self.bottlenecks)):
            y = bottleneck(layer.to(dtype))
            if tuple(y.shape[-2:]) != tuple(size):
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            out = out + weights[index] * y
        return out
