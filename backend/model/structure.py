"""Structure maps: 3D keypoints projected into each view as Gaussian heatmaps and soft edge maps.

Edge maps follow AutoLink: for every keypoint pair (i, j) in a view, L_ij(u) = w_ij exp(-d^2 /
(2 sigma^2)) with d the distance from pixel centre u to the segment between the two projected
keypoints; the view's edge map is the pixel-wise max over all pairs.

The learnable adjacency: w_ij = softplus(m * A_ij) with m = 512 and A initialised to
(-4 + noise) / m, so every edge starts at softplus(-4) ~ 0.018. Adam-type optimisers take steps of
about the learning rate in A whatever the gradient's scale, so the effective logit m * A moves m
times faster than the other parameters: edges switch on and off within a few hundred steps while
the keypoints move slowly. (AutoLink keeps m = 512 for all its data sets; no separate learning
rate is needed, and the adjacency gets no weight decay - see KeyDiff3D.parameter_groups.)

Pixel convention: maps of size w x h, pixel (row i, column j) has centre (u, v) = (j + 0.5, i + 0.5);
uv are (u, v) pairs - column first (not `ij` meshgrid order).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .lifting import project_fp32

ADJACENCY_MULTIPLIER = 512.0


class Adjacency(nn.Module):
    """Learnable symmetric edge weights w (N, N) = softplus(m * sym(A)), zero diagonal."""

    def __init__(
        self, num_keypoints: int, multiplier: float = ADJACENCY_MULTIPLIER, init: float = -4.0, noise: float = 0.1
    ) -> None:
        super().__init__()
        self.multiplier = multiplier
        logits = init + noise * torch.randn(num_keypoints, num_keypoints)
        self.raw = nn.Parameter(logits / multiplier)

    def logits(self) -> torch.Tensor:
        """m * (A + A^T) / 2, the pre-softplus edge logits (N, N)."""
        return self.multiplier * 0.5 * (self.raw + self.raw.T)

    def forward(self) -> torch.Tensor:
        weights = F.softplus(self.logits())
        return weights * (1.0 - torch.eye(weights.shape[0], device=weights.device, dtype=weights.dtype))


def project_keypoints(P: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """P (B, K, 3, 4), points (B, N, 3) world -> (uv (B, K, N, 2) pixels, depth (B, K, N)).

    All orbit cameras see the whole voxel cube in front of them, so depth > 0 in practice; the
    depth is returned for callers that need to check.
    """
    return project_fp32(P, points[:, None])


def pixel_centers(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(h, w, 2) pixel-centre coordinates (u, v) = (column + 0.5, row + 0.5)."""
    v, u = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype) + 0.5,
        torch.arange(width, device=device, dtype=dtype) + 0.5,
        indexing="ij",
    )
    return torch.stack([u, v], dim=-1)


def keypoint_heatmaps(uv: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """uv (..., N, 2) pixels -> (..., N, h, w) Gaussians exp(-|p - uv|^2 / (2 sigma^2)), peak 1. size = (h, w)."""
    grid = pixel_centers(*size, device=uv.device, dtype=uv.dtype)  # (h, w, 2)
    diff = grid - uv[..., None, None, :]
    return torch.exp(-(diff**2).sum(-1) / (2.0 * sigma**2))


def segment_distance_sq(points: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared distance from points (..., 2) to segments a->b (..., 2), all broadcast together: (...)."""
    ab = b - a
    ap = points - a
    t = ((ap * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)).clamp(0.0, 1.0)
    return ((ap - t[..., None] * ab) ** 2).sum(-1)


def edge_maps(
    uv: torch.Tensor, weights: torch.Tensor, size: tuple[int, int], sigma: float, pair_chunk: int = 32
) -> torch.Tensor:
    """uv (..., N, 2) pixels, weights (N, N) symmetric -> (..., h, w) = max_{i<j} w_ij exp(-d_ij^2 / 2 sigma^2).

    The max over pairs only passes gradients to the winning pair at each pixel, so the winner is
    found without autograd (pairs in chunks, running max) and only its value is recomputed with
    gradients: the same values and gradients as a differentiable max over all N(N-1)/2 pair maps,
    at the memory of a single map.
    """
    N = uv.shape[-2]
    h, w = size
    i, j = torch.triu_indices(N, N, offset=1, device=uv.device)
    grid = pixel_centers(h, w, device=uv.device, dtype=uv.dtype)  # (h, w, 2)
    pair_weights = weights[i, j]
    with torch.no_grad():
        best_value = best_pair = None
        for start in range(0, i.numel(), pair_chunk):
            ii, jj = i[start : start + pair_chunk], j[start : start + pair_chunk]
            a, b = uv[..., ii, None, None, :].detach(), uv[..., jj, None, None, :].detach()  # (..., P, 1, 1, 2)
            values = pair_weights[start : start + pair_chunk, None, None].detach() * torch.exp(
                -segment_distance_sq(grid, a, b) / (2.0 * sigma**2)
            )
            chunk_value, chunk_pair = values.max(dim=-3)
            chunk_pair = chunk_pair + start
            if best_value is None:
                best_value, best_pair = chunk_value, chunk_pair
            else:
                better = chunk_value > best_value
                best_value = torch.where(better, chunk_value, best_value)
                best_pair = torch.where(better, chunk_pair, best_pair)
    batch_shape = uv.shape[:-2]
    flat_pair = best_pair.reshape(*batch_shape, h * w)
    a = torch.gather(uv, -2, i[flat_pair][..., None].expand(*batch_shape, h * w, 2)).reshape(*batch_shape, h, w, 2)
    b = torch.gather(uv, -2, j[flat_pair][..., None].expand(*batch_shape, h * w, 2)).reshape(*batch_shape, h, w, 2)
    return pair_weights[best_pair] * torch.exp(-segment_distance_sq(grid, a, b) / (2.0 * sigma**2))


def structure_maps(
    uv: torch.Tensor, weights: torch.Tensor, size: tuple[int, int], heatmap_sigma: float, edge_sigma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """uv (B, K, N, 2) map pixels -> (heatmaps (B, K, N, h, w), edges (B, K, h, w)); sigmas in pixels."""
    return keypoint_heatmaps(uv, size, heatmap_sigma), edge_maps(uv, weights, size, edge_sigma)
