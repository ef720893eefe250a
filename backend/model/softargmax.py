"""Integral regression (soft-argmax): heatmap logits -> expected coordinates, fully differentiable.

3D: s_n = sum_x x * softmax(beta * H_n)(x) over all M^3 voxel centres, in world units directly.
2D: the same over map pixels, in map pixel coordinates (pixel centres at j + 0.5).
beta is an inverse temperature; it is kept positive by learning log(beta).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .lifting import voxel_centers


class Temperature(nn.Module):
    """A positive scalar beta = exp(log_beta); fixed (a buffer) unless learnable."""

    def __init__(self, beta: float = 1.0, learnable: bool = True) -> None:
        super().__init__()
        if beta <= 0:
            raise ValueError("the soft-argmax beta must be positive")
        value = torch.tensor(math.log(beta))
        if learnable:
            self.log_beta = nn.Parameter(value)
        else:
            self.register_buffer("log_beta", value)

    def forward(self) -> torch.Tensor:
        return self.log_beta.exp()


class SoftArgmax3D(nn.Module):
    """(B, N, M, M, M) logits indexed [x, y, z] -> (points (B, N, 3) in world units, probs (B, N, M, M, M))."""

    def __init__(self, size: int, half: float, beta: float = 1.0, learnable: bool = True) -> None:
        super().__init__()
        self.size = size
        self.temperature = Temperature(beta, learnable)
        self.register_buffer("centers", voxel_centers(size, half).reshape(-1, 3), persistent=False)

    def forward(self, heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, N = heatmaps.shape[:2]
        with torch.autocast(device_type=heatmaps.device.type, enabled=False):  # M^3-term sums in fp32
            dtype = torch.promote_types(heatmaps.dtype, torch.float32)
            logits = heatmaps.reshape(B, N, -1).to(dtype) * self.temperature().to(dtype)
            probs = torch.softmax(logits, dim=-1)
            points = probs @ self.centers.to(dtype)
        return points, probs.reshape(heatmaps.shape)


class SoftArgmax2D(nn.Module):
    """(..., h, w) logits -> (uv (..., 2) in map pixels, centres at +0.5, probs (..., h, w))."""

    def __init__(self, beta: float = 1.0, learnable: bool = True) -> None:
        super().__init__()
        self.temperature = Temperature(beta, learnable)

    def forward(self, heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = heatmaps.shape[-2:]
        with torch.autocast(device_type=heatmaps.device.type, enabled=False):
            dtype = torch.promote_types(heatmaps.dtype, torch.float32)
            logits = heatmaps.flatten(-2).to(dtype) * self.temperature().to(dtype)
            probs = torch.softmax(logits, dim=-1).reshape(heatmaps.shape)
            u = torch.arange(w, device=heatmaps.device, dtype=probs.dtype) + 0.5
            v = torch.arange(h, device=heatmaps.device, dtype=probs.dtype) + 0.5
            uv = torch.stack([(probs.sum(-2) * u).sum(-1), (probs.sum(-1) * v).sum(-1)], dim=-1)
        return uv, probs
