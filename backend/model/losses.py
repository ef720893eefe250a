"""Training losses: perceptual reconstruction + mask loss (the method), and joint losses (supervised mode).

L = mean over views of (lambda_perceptual * L_perc + lambda_mask * ||E_k - M_k||^2), 1.0 and 0.5.

Perceptual term: L1 between VGG16 relu1_2/2_2/3_3/4_3 features when a VGG16 weights file is
available. Without one (the normal case here - nothing can be downloaded), the substitute is
`PyramidLoss`: over a 4-level image pyramid, L1 + 0.5 (1 - SSIM) + L1 of image gradients. Chosen
because it is cheap on a CPU (VGG16 costs ~3 GFLOP per 128 px image) and, unlike a randomly
initialised VGG, its gradients point at structure (edges, local contrast) rather than at arbitrary
random-filter responses; the overfit test in tests/test_model_training.py shows keypoints land on
the creature with it. The resolved choice ("vgg16" or "pyramid") is written into the model config,
hence into every checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import MissingWeightsError
from .vgg import VGG16_ENV, VGGPerceptualLoss, find_vgg16_weights


def gaussian_window(size: int = 5, sigma: float = 1.5, device=None, dtype=torch.float32) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 5, sigma: float = 1.5) -> torch.Tensor:
    """Mean structural similarity of (N, C, H, W) images in [0, 1] (Gaussian window of side `window`
    and deviation `sigma` in pixels, reflect padding). The project's one SSIM: the perceptual
    substitute (window 5) and the Gaussian Frosting fit (window 11, as in 3DGS) both use it."""
    C = x.shape[1]
    kernel = gaussian_window(window, sigma, device=x.device, dtype=x.dtype).expand(C, 1, -1, -1)
    pad = window // 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(t, (pad,) * 4, mode="reflect"), kernel, groups=C)

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx**2
    vy = blur(y * y) - my**2
    cov = blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    value = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return value.mean()


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


class PyramidLoss(nn.Module):
    """VGG-free perceptual substitute: (N, 3, H, W) x2 in [0, 1] -> scalar, averaged over `levels` scales."""

    def __init__(self, levels: int = 4, ssim_weight: float = 0.5, gradient_weight: float = 1.0) -> None:
        super().__init__()
        self.levels = levels
        self.ssim_weight = ssim_weight
        self.gradient_weight = gradient_weight

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = prediction.new_zeros(())
        levels = 0
        x, y = prediction, target
        for level in range(self.levels):
            if min(x.shape[-2:]) < 8:
                break
            if level > 0:
                x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
            gx, gy = image_gradients(x)
            tx, ty = image_gradients(y)
            loss = loss + (x - y).abs().mean() + self.ssim_weight * (1.0 - ssim(x, y))
            loss = loss + self.gradient_weight * 0.5 * ((gx - tx).abs().mean() + (gy - ty).abs().mean())
            levels += 1
        return loss / max(levels, 1)


def resolve_perceptual_loss(kind: str, vgg16_path: str = "") -> str:
    """'auto' -> 'vgg16' when a VGG16 weights file is found, else 'pyramid'; other kinds unchanged.

    An explicit 'vgg16' is only checked when the loss is built (`make_perceptual_loss`), so a model
    trained with VGG16 still loads for inference on a machine without the file.
    """
    if kind == "auto":
        return "vgg16" if find_vgg16_weights(vgg16_path or None) is not None else "pyramid"
    return kind


def make_perceptual_loss(kind: str, vgg16_path: str = "") -> nn.Module:
    """The perceptual loss module for a resolved kind ('vgg16' or 'pyramid')."""
    if kind == "vgg16":
        path = find_vgg16_weights(vgg16_path or None)
        if path is None:
            raise MissingWeightsError(
                f"perceptual_loss 'vgg16' needs a VGG16 weights file: set ${VGG16_ENV} or vgg16_path "
                "to torchvision's vgg16-397923af.pth"
            )
        return VGGPerceptualLoss(path)
    if kind == "pyramid":
        return PyramidLoss()
    raise ValueError(f"unresolved perceptual loss kind {kind!r}")


def mask_loss(edges: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """||E_k - M_k||^2 as a per-pixel mean, averaged over views: edges, masks (B, K, h, w) -> scalar."""
    return ((edges - masks) ** 2).mean()


def joint_loss(points: torch.Tensor, joints: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean L1 distance between corresponding keypoints and GT joints: (B, N, 3), (B, N, 3), valid (B, N)."""
    error = (points - joints).abs().sum(-1)
    if valid is None:
        return error.mean()
    valid = valid.to(error.dtype)
    return (error * valid).sum() / valid.sum().clamp_min(1.0)


def chamfer_loss(points: torch.Tensor, joints: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric Chamfer distance (Euclidean, mean of both directions) between (B, N, 3) and (B, J, 3) sets.

    `valid` (B, J) marks real joints in a padded joint set.
    """
    distance = torch.cdist(points, joints)  # (B, N, J)
    if valid is None:
        valid = torch.ones(joints.shape[:2], dtype=torch.bool, device=joints.device)
    far = torch.finfo(distance.dtype).max
    masked = torch.where(valid[:, None, :], distance, torch.full_like(distance, far))
    to_joints = masked.amin(dim=2).mean()
    to_points = distance.amin(dim=1)
    to_points = (to_points * valid).sum() / valid.sum().clamp_min(1)
    return 0.5 * (to_joints + to_points)
