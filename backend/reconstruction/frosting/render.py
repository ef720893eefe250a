"""Rasterising Gaussians: gsplat on CUDA, and a dense pure-torch reference with the same interface.

Both take world->camera `viewmats` (C, 4, 4) and intrinsics `Ks` (C, 3, 3) in the project's pixel
convention (pixel centres at j + 0.5, which is also gsplat's), and return
(render (C, H, W, 4) = RGB + expected depth, alpha (C, H, W, 1), info) like
`gsplat.rasterization(..., render_mode="RGB+ED")`. The reference evaluates every Gaussian at every
pixel (O(N H W) memory), so it is for tiny images: CPU tests of the training loop, and checking
gsplat's output on the GPU. Its `info` carries what gsplat's densification strategy reads.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import numpy as np
import torch

from ...errors import DeviceError
from ...geometry import Cameras
from .gaussians import covariance

Rasterizer = Callable[..., tuple[torch.Tensor, torch.Tensor, dict]]
EPS2D = 0.3  # screen-space dilation (pixels^2) both rasterisers add, as 3DGS does
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999


def camera_tensors(cameras: Cameras, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """viewmats (V, 4, 4) world->camera and Ks (V, 3, 3), float32 on `device`."""
    view = np.tile(np.eye(4), (len(cameras), 1, 1))
    view[:, :3, :3], view[:, :3, 3] = cameras.R, cameras.t
    return (
        torch.as_tensor(view, dtype=torch.float32, device=device),
        torch.as_tensor(cameras.K, dtype=torch.float32, device=device),
    )


def rasterize_torch(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    *,
    near_plane: float = 0.01,
    backgrounds: torch.Tensor | None = None,
    **_: object,
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Dense EWA splatting, front-to-back alpha compositing sorted by camera depth.

    means (N, 3), quats (N, 4) wxyz, scales (N, 3), opacities (N,), colors (N, 3) in [0, 1].
    """
    cov_world = covariance(quats, scales)
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=means.dtype, device=means.device) + 0.5,
        torch.arange(width, dtype=means.dtype, device=means.device) + 0.5,
        indexing="ij",
    )
    pixels = torch.stack([xs, ys], -1).reshape(-1, 2)  # (HW, 2)
    # projection of every Gaussian into every camera, batched: (C, N, ...)
    R, t = viewmats[:, :3, :3], viewmats[:, :3, 3]
    cam = torch.einsum("cij,nj->cni", R, means) + t[:, None, :]
    z = cam[..., 2]
    valid = z > near_plane
    zs = torch.where(valid, z, torch.ones_like(z))
    fx, fy, cx, cy = (Ks[:, i, j, None] for i, j in ((0, 0), (1, 1), (0, 2), (1, 2)))
    means2d = torch.stack([fx * cam[..., 0] / zs + cx, fy * cam[..., 1] / zs + cy], -1)
    zero = torch.zeros_like(zs)
    J = torch.stack(
        [
            torch.stack([fx / zs, zero, -fx * cam[..., 0] / zs**2], -1),
            torch.stack([zero, fy / zs, -fy * cam[..., 1] / zs**2], -1),
        ],
        dim=-2,
    )  # (C, N, 2, 3) Jacobian of the projection at the mean
    cov_cam = R[:, None] @ cov_world[None] @ R[:, None].transpose(-1, -2)
    cov2d = J @ cov_cam @ J.transpose(-1, -2) + EPS2D * torch.eye(2, dtype=means.dtype, device=means.device)
    conic = torch.linalg.inv(cov2d)
    renders, alphas = [], []
    for c in range(viewmats.shape[0]):
        d = pixels[:, None, :] - means2d[c][None]  # (HW, N, 2)
        power = -0.5 * torch.einsum("pni,nij,pnj->pn", d, conic[c], d)
        alpha = (opacities[None] * torch.exp(power)).clamp(max=ALPHA_MAX)
        alpha = torch.where((alpha >= ALPHA_MIN) & valid[c][None], alpha, torch.zeros_like(alpha))
        order = torch.argsort(torch.where(valid[c], z[c], torch.full_like(z[c], float("inf"))))
        a = alpha[:, order]
        transmittance = torch.cumprod(torch.cat([torch.ones_like(a[:, :1]), 1 - a[:, :-1]], 1), 1)
        weight = a * transmittance  # (HW, N)
        rgb = weight @ colors[order]
        acc = weight.sum(1, keepdim=True)
        depth = (weight @ z[c][order][:, None]) / acc.clamp_min(1e-10)
        if backgrounds is not None:
            rgb = rgb + (1 - acc) * backgrounds[c][None]
        renders.append(torch.cat([rgb, depth], 1).reshape(height, width, 4))
        alphas.append(acc.reshape(height, width, 1))
    eig_max = 0.5 * (cov2d[..., 0, 0] + cov2d[..., 1, 1]) + torch.sqrt(
        (0.25 * (cov2d[..., 0, 0] - cov2d[..., 1, 1]) ** 2 + cov2d[..., 0, 1] ** 2).clamp_min(0)
    )
    radius = (torch.ceil(3 * eig_max.sqrt()).detach() * valid).to(torch.int32)
    info = {
        "means2d": means2d,  # (C, N, 2), in the graph: densification reads its gradient
        "radii": torch.stack([radius, radius], -1),  # (C, N, 2)
        "width": width,
        "height": height,
        "n_cameras": viewmats.shape[0],
        "gaussian_ids": None,  # unpacked layout, as gsplat reports with packed=False
    }
    return torch.stack(renders), torch.stack(alphas), info


def rasterize_gsplat(means, quats, scales, opacities, colors, viewmats, Ks, width, height, **kwargs):
    """gsplat.rasterization in RGB + expected-depth mode (CUDA only; JIT-compiles on first use)."""
    from gsplat import rasterization

    kwargs.setdefault("packed", False)
    return rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height, render_mode="RGB+ED", **kwargs
    )


def pick_rasterizer(device: torch.device) -> Rasterizer:
    """gsplat on CUDA; the dense reference on the CPU (tiny problems only)."""
    if device.type == "cuda":
        if importlib.util.find_spec("gsplat") is None:
            raise DeviceError("Gaussian Frosting needs the gsplat package; install it with `pip install gsplat`")
        return rasterize_gsplat
    return rasterize_torch
