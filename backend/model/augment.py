"""Random affine augmentation of the input view that keeps the geometry exact.

Warping an image by a 2D affine (or any homography) H in pixel coordinates moves the projection of
every world point from u to H u, so the warped view's projection matrix is exactly H @ P. The
augmentation therefore warps the input view's image AND its external feature maps (same affine in
normalised coordinates) and replaces its P by H P: lifting stays consistent, the keypoints' world
frame is untouched, and the targets (all K views with their original P) are unchanged.
Only the input view (index 0) is augmented; the other views play SV3D's generated views.

Colour jitter (`color_jitter`) changes the foreground colours of every view independently, for the
feature branch only (the reconstruction's appearance input and targets keep the true colours): the
features must not depend on one texture or lighting, since held-out artist-made meshes look
nothing like the procedural creatures, and SV3D's views are not colour-consistent either.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def random_affine(
    batch: int, size: tuple[int, int], rotation_deg: float, scale: float, translate: float, device=None
) -> torch.Tensor:
    """(B, 3, 3) pixel-space affines about the image centre; size = (width, height).

    Rotation uniform in [-rotation_deg, rotation_deg], scale in [1 - scale, 1 + scale], translation
    uniform in [-translate, translate] times the image size.
    """
    width, height = size
    r = (torch.rand(batch, 4) * 2 - 1).to(device)  # drawn on the CPU: same draws on any device
    angle = torch.deg2rad(r[:, 0] * rotation_deg)
    s = 1.0 + r[:, 1] * scale
    tx = r[:, 2] * translate * width
    ty = r[:, 3] * translate * height
    cx, cy = width / 2.0, height / 2.0
    cos, sin = torch.cos(angle) * s, torch.sin(angle) * s
    H = torch.zeros(batch, 3, 3, device=device)
    H[:, 0, 0], H[:, 0, 1] = cos, -sin
    H[:, 1, 0], H[:, 1, 1] = sin, cos
    H[:, 0, 2] = cx - cos * cx + sin * cy + tx
    H[:, 1, 2] = cy - sin * cx - cos * cy + ty
    H[:, 2, 2] = 1.0
    return H


def warp(maps: torch.Tensor, H: torch.Tensor, image_size: tuple[int, int], fill: float = 0.0) -> torch.Tensor:
    """Warp (B, C, h, w) maps covering an image of (width, height) = image_size by pixel-space H (B, 3, 3).

    Output pixel u' takes the value at H^-1 u'. Uncovered pixels get `fill` (white for images).
    """
    B, C, h, w = maps.shape
    width, height = image_size
    # normalised (align_corners=False) <-> image pixels: u = (x + 1) W / 2
    to_pixels = torch.tensor(
        [[width / 2.0, 0.0, width / 2.0], [0.0, height / 2.0, height / 2.0], [0.0, 0.0, 1.0]],
        device=H.device,
        dtype=H.dtype,
    )
    theta = torch.linalg.inv(to_pixels) @ torch.linalg.inv(H) @ to_pixels  # output normalised -> input normalised
    grid = F.affine_grid(theta[:, :2].to(maps.dtype), (B, C, h, w), align_corners=False)
    warped = F.grid_sample(maps, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if fill != 0.0:
        coverage = F.grid_sample(
            torch.ones_like(maps[:, :1]), grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        warped = warped + fill * (1.0 - coverage)
    return warped


def color_jitter(images: torch.Tensor, masks: torch.Tensor, strength: float) -> torch.Tensor:
    """Random per-image brightness, per-channel gain and saturation on the foreground.

    images (..., 3, H, W) in [0, 1], masks (..., H, W) in [0, 1]; factors are drawn uniformly from
    [1 - strength, 1 + strength] (gains from half that range); the background keeps its colour
    (white), as every generator composites on white.
    """
    if strength <= 0:
        return images
    batch_shape = images.shape[:-3]
    r = (torch.rand(*batch_shape, 5) * 2 - 1).to(images.device, images.dtype)  # drawn on the CPU
    brightness = 1 + strength * r[..., 0:1]
    gains = 1 + 0.5 * strength * r[..., 1:4]
    saturation = (1 + strength * r[..., 4:5])[..., None, None]
    jittered = images * (brightness * gains)[..., None, None]
    grey = jittered.mean(dim=-3, keepdim=True)
    jittered = (grey + saturation * (jittered - grey)).clamp(0.0, 1.0)
    alpha = masks.unsqueeze(-3)
    return alpha * jittered + (1 - alpha) * images
