"""Reconstruction network: input-view appearance + a target view's structure maps -> that target view.

Appearance comes from the (augmented) input view with AutoLink-style patch masking (~80% of a
16x16 patch grid hidden), so the network cannot copy the input and must take the target's
geometry from the structure maps. The masked input image is given twice:
- concatenated with the structure maps at the U-Net's input (aligned when the target is the input
  view - AutoLink's setting);
- through an appearance encoder whose pooled code is broadcast into the U-Net's bottleneck, which
  carries colours/texture to the generated views, where the input image is not pixel-aligned.
U-Net blocks use BatchNorm and LeakyReLU(0.2) like AutoLink's decoder. Output in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F


def patch_mask(images: torch.Tensor, ratio: float, grid: int = 16) -> torch.Tensor:
    """Hide `ratio` of a grid x grid patch layout: (B, C, H, W) -> same, hidden patches set to 0.5 grey.

    Exactly round(ratio * grid^2) patches are hidden per image, chosen at random.
    """
    if ratio <= 0:
        return images
    B, _, H, W = images.shape
    cells = grid * grid
    hidden = round(ratio * cells)
    order = torch.rand(B, cells).argsort(dim=1).to(images.device)  # drawn on the CPU: same draws on any device
    keep = torch.ones(B, cells, device=images.device, dtype=images.dtype)
    keep.scatter_(1, order[:, :hidden], 0.0)
    keep = F.interpolate(keep.reshape(B, 1, grid, grid), size=(H, W), mode="nearest")
    return images * keep + 0.5 * (1.0 - keep)


def unet_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 convs with BatchNorm and LeakyReLU(0.2)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(0.2, inplace=True),
    )


class AppearanceEncoder(nn.Module):
    """(B, 3, H, W) -> (B, dim) global appearance code (strided convs + global average pool)."""

    def __init__(self, dim: int, widths: Sequence[int] = (32, 64, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = 3
        for width in widths:
            layers += [nn.Conv2d(previous, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            previous = width
        self.body = nn.Sequential(*layers)
        self.project = nn.Linear(previous, dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.project(self.body(images * 2.0 - 1.0).mean(dim=(-2, -1)))


class ReconstructionNet(nn.Module):
    """appearance (B, 3, H, W) in [0, 1], structure (B, K, S, h, w) -> images (B, K, 3, h, w) in [0, 1].

    h and w must be divisible by 2 ** (len(widths) - 1). The appearance image is resized to h x w.
    """

    def __init__(
        self, structure_channels: int, widths: Sequence[int] = (32, 64, 128, 128), appearance_dim: int = 64
    ) -> None:
        super().__init__()
        widths = list(widths)
        self.appearance = AppearanceEncoder(appearance_dim)
        self.down = nn.ModuleList()
        previous = 3 + structure_channels
        for width in widths:
            self.down.append(unet_block(previous, width))
            previous = width
        self.fuse = unet_block(widths[-1] + appearance_dim, widths[-1])
        self.up = nn.ModuleList(
            unet_block(widths[level + 1] + widths[level], widths[level]) for level in reversed(range(len(widths) - 1))
        )
        self.out = nn.Conv2d(widths[0], 3, 1)

    def forward(self, appearance: torch.Tensor, structure: torch.Tensor) -> torch.Tensor:
        B, K, S, h, w = structure.shape
        image = F.interpolate(appearance, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        code = self.appearance(image)  # (B, D)
        x = torch.cat([image[:, None].expand(-1, K, -1, -1, -1), structure], dim=2).reshape(B * K, 3 + S, h, w)
        skips = []
        for level, block in enumerate(self.down):
            if level > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        code_map = code[:, None, :, None, None].expand(-1, K, -1, *x.shape[-2:]).reshape(B * K, -1, *x.shape[-2:])
        x = self.fuse(torch.cat([x, code_map], dim=1))
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return torch.sigmoid(self.out(x)).reshape(B, K, 3, h, w)
