"""2D -> 3D lifting: unproject per-view feature maps into a voxel volume with a softmax over views.

Conventions (keydiff3d.geometry): P = K [R | t] maps world points to pixels of an image of size
W x H, pixel centres at j + 0.5, the image spanning [0, W] x [0, H]. A feature map of size w x h
covering the same image is addressed with P scaled by diag(w/W, h/H, 1) (what `Cameras.resized`
does); its normalised grid_sample coordinate is x = 2u/w - 1, y = 2v/h - 1 with
align_corners=False (x by the width, y by the height - the classic bug on non-square maps).

Volume layout: (B, C, M, M, M) indexed [x, y, z] - axis 2 is world x, axis 3 world y, axis 4 world
z - over the cube [-half, half]^3; voxel i's centre is -half + (i + 0.5) * 2 half / M.

Views that cannot see a voxel (behind the camera, or projecting outside the image) are excluded
from the softmax over views, not fed as zeros; a voxel no view sees gets zero features.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from ..geometry import project_points

MIN_DEPTH = 1e-6  # voxels closer to the camera plane than this count as behind it
HIDDEN = 1e4  # logit offset of views that do not see a voxel: exp(-HIDDEN) == 0 in every float type


def voxel_centers(size: int, half: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """World coordinates of the voxel centres, (M, M, M, 3), indexed [x, y, z]."""
    axis = (torch.arange(size, device=device, dtype=dtype) + 0.5) * (2.0 * half / size) - half
    gx, gy, gz = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.stack([gx, gy, gz], dim=-1)


def scale_projections(P: torch.Tensor, from_size: tuple[int, int], to_size: tuple[int, int]) -> torch.Tensor:
    """P (..., 3, 4) for images of (width, height) = from_size -> P for maps of (width, height) = to_size."""
    sx = to_size[0] / from_size[0]
    sy = to_size[1] / from_size[1]
    scale = torch.tensor([sx, sy, 1.0], dtype=P.dtype, device=P.device)
    return P * scale[:, None]


def project_fp32(P: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`project_points` in at least fp32 even under autocast (fp16 pixel coordinates drift by ~0.1 px)."""
    dtype = torch.promote_types(P.dtype, torch.float32)
    with torch.autocast(device_type=P.device.type, enabled=False):
        return project_points(P.to(dtype), points.to(dtype))


def sample_views(features: torch.Tensor, P: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinearly sample every view's features at the projections of `points`.

    features: (B, K, C, h, w); P: (B, K, 3, 4) for maps of size w x h; points: (Q, 3) or (B, Q, 3).
    Returns (samples (B, K, C, Q), visible (B, K, Q) bool: in front of the camera and inside the map).
    Border texels are clamped (padding "border") so visible points near the edge are not darkened.
    """
    B, K, C, h, w = features.shape
    if points.dim() == 2:
        points = points.expand(B, -1, -1)
    uv, depth = project_fp32(P, points[:, None])  # (B, K, Q, 2), (B, K, Q)
    u, v = uv[..., 0], uv[..., 1]
    visible = (depth > MIN_DEPTH) & (u >= 0) & (u <= w) & (v >= 0) & (v <= h)
    grid = torch.stack([2.0 * u / w - 1.0, 2.0 * v / h - 1.0], dim=-1)
    grid = torch.where(visible[..., None], grid, torch.zeros_like(grid))  # keep far-off values finite
    samples = F.grid_sample(
        features.reshape(B * K, C, h, w),
        grid.reshape(B * K, 1, -1, 2).to(features.dtype),
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )
    return samples.reshape(B, K, C, -1), visible


def softmax_over_views(samples: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """(B, K, C, Q) samples, (B, K, Q) visibility -> (B, C, Q) = sum_k softmax_k(f_k) f_k over visible views.

    The softmax runs per voxel and channel over the views that see the voxel only; a voxel seen by
    no view gets 0. Unseen views get the logit -HIDDEN, whose exponential is exactly 0 next to any
    seen view (features are O(1-100), far below HIDDEN), so the fused softmax is the masked one;
    voxels with no seen view are zeroed afterwards, which also zeroes their gradients.
    """
    mask = visible[:, :, None, :]  # (B, K, 1, Q)
    weights = torch.softmax(samples.masked_fill(~mask, -HIDDEN), dim=1)
    seen = mask.any(dim=1).to(samples.dtype)  # (B, 1, Q)
    return (weights * samples).sum(dim=1) * seen


def _lift_points(features: torch.Tensor, P: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    samples, visible = sample_views(features, P, points)
    return softmax_over_views(samples, visible)


def unproject(
    features: torch.Tensor,
    P: torch.Tensor,
    image_size: tuple[int, int],
    size: int,
    half: float,
    chunk: int = 0,
) -> torch.Tensor:
    """Lift per-view features into a voxel volume.

    features: (B, K, C, h, w) per-view maps covering images of (width, height) = image_size.
    P: (B, K, 3, 4) projection matrices for those images (pixel convention of keydiff3d.geometry).
    Returns (B, C, M, M, M) with M = size over [-half, half]^3, indexed [x, y, z].
    chunk > 0 lifts that many voxels at a time; while training, chunks are recomputed in the
    backward pass (gradient checkpointing), so peak memory scales with the chunk, not with M^3.
    """
    B, K, C, h, w = features.shape
    geometry_dtype = torch.promote_types(features.dtype, torch.float32)  # cameras stay fp32 under autocast
    P_maps = scale_projections(P.to(geometry_dtype), image_size, (w, h))
    points = voxel_centers(size, half, device=features.device, dtype=geometry_dtype).reshape(-1, 3)
    if chunk <= 0 or chunk >= points.shape[0]:
        lifted = _lift_points(features, P_maps, points)
    else:
        parts = []
        for start in range(0, points.shape[0], chunk):
            part = points[start : start + chunk]
            if torch.is_grad_enabled() and features.requires_grad:
                parts.append(checkpoint(_lift_points, features, P_maps, part, use_reentrant=False))
            else:
                parts.append(_lift_points(features, P_maps, part))
        lifted = torch.cat(parts, dim=-1)
    return lifted.reshape(B, C, size, size, size)


def coordinate_channels(size: int, half: float, batch: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(B, 3, M, M, M) voxel-centre coordinates scaled to [-1, 1], to append to a lifted volume."""
    coords = voxel_centers(size, half, device=device, dtype=dtype).permute(3, 0, 1, 2) / half
    return coords.unsqueeze(0).expand(batch, -1, -1, -1, -1)
