"""The shallow keypoint head phi_kp on the aggregated features.

It produces the per-view features that get lifted into the volume (the method); a second instance
with num_keypoints outputs turns those features into per-view 2D heatmaps for the "2D keypoints +
triangulation" ablation, so both variants share every piece up to this point.
"""

from __future__ import annotations

import torch
from torch import nn

from .features import group_norm


class KeypointHead(nn.Module):
    """(N, C_in, h, w) -> (N, C_out, h, w): 3x3 conv + GroupNorm + ReLU, then a 1x1 projection.

    Used twice: aggregated features -> keypoint features (C'' channels), and, for the
    triangulation variant, keypoint features -> per-view 2D heatmap logits (num_keypoints channels).
    """

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
