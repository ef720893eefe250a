"""Shallow heads on the aggregated features: the keypoint head phi_kp and the 2D heatmap head.

The keypoint head produces the per-view features that get lifted into the volume (the method); the
2D heatmap head turns the same features into per-view keypoint heatmaps for the "2D keypoints +
triangulation" ablation, so both variants share every piece up to this point.
"""

from __future__ import annotations

import torch
from torch import nn

from .features import group_norm


class KeypointHead(nn.Module):
    """(N, C', h, w) -> (N, C'', h, w): 3x3 conv + GroupNorm + ReLU, then a 1x1 projection."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, 3, padding=1, bias=False),
            group_norm(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class HeatmapHead2D(nn.Module):
    """(N, C'', h, w) -> (N, num_keypoints, h, w) logits of per-view 2D keypoint heatmaps."""

    def __init__(self, in_channels: int, num_keypoints: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, 3, padding=1, bias=False),
            group_norm(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, num_keypoints, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
