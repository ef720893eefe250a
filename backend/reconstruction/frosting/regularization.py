"""SuGaR-style surface regularisation (Guedon & Lepetit, CVPR 2024), pure torch.

Once the Gaussians are flat, opaque and non-overlapping, the density they define equals the
density of a thin opaque sheet: at a point p near its closest Gaussian g* (mean mu, normal n =
the shortest axis, s_n its scale) d_ideal(p) = exp(-<p - mu, n>^2 / (2 s_n^2)). The loss pulls the
real density (sum over neighbours of alpha_g exp(-1/2 (p - mu_g)^T Sigma_g^-1 (p - mu_g))) towards
it at points sampled around the Gaussians. Two cheap terms help it along: opacities pushed to 0 or
1 (binary-cross-entropy with themselves), and the smallest scale pushed down (flat Gaussians).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

from .gaussians import GaussianParams, quat_to_matrix


def nearest_neighbours(means: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (N, k) of each Gaussian's k nearest Gaussians, itself first (CPU k-d tree)."""
    points = means.detach().cpu().numpy().astype(np.float64)
    k = min(k, len(points))
    _, idx = cKDTree(points).query(points, k=k, workers=-1)
    return torch.as_tensor(np.asarray(idx).reshape(len(points), k), device=means.device)


def density_alignment_loss(
    gaussians: GaussianParams, neighbours: torch.Tensor, samples: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Mean |d(p) - d_ideal(p)| over `samples` points drawn from random Gaussians' own distributions.

    neighbours: (N, k) from `nearest_neighbours` (may be a few hundred steps stale).
    """
    N = len(gaussians)
    if neighbours.shape[0] != N:
        raise ValueError("neighbour table is stale: its length differs from the number of Gaussians")
    device = gaussians.means.device
    pick = torch.randint(0, N, (samples,), device=device, generator=generator)
    R = quat_to_matrix(gaussians.quats)
    scales = gaussians.scales
    noise = torch.randn(samples, 3, device=device, generator=generator)
    p = gaussians.means[pick] + ((R[pick] @ (scales[pick] * noise)[..., None]).squeeze(-1))
    nb = neighbours[pick]  # (S, k)
    local = torch.einsum("skji,skj->ski", R[nb], p[:, None, :] - gaussians.means[nb])  # coords in each Gaussian's frame
    maha = ((local / scales[nb]) ** 2).sum(-1)  # (S, k)
    contrib = gaussians.opacities[nb] * torch.exp(-0.5 * maha)
    density = contrib.sum(-1)
    best = contrib.argmax(-1)  # the Gaussian that dominates p stands for the surface at p
    b_local = torch.gather(local, 1, best[:, None, None].expand(-1, 1, 3)).squeeze(1)
    b_scales = torch.gather(scales[nb], 1, best[:, None, None].expand(-1, 1, 3)).squeeze(1)
    thin = b_scales.argmin(-1, keepdim=True)
    offset = torch.gather(b_local, 1, thin).squeeze(1)
    s_n = torch.gather(b_scales, 1, thin).squeeze(1)
    ideal = torch.exp(-0.5 * (offset / s_n) ** 2)
    return (density - ideal).abs().mean()  # unclamped: overlapping Gaussians (density > 1) are penalised too


def opacity_binary_loss(gaussians: GaussianParams) -> torch.Tensor:
    """Entropy of the opacities: lowest when each Gaussian is either fully opaque or transparent."""
    a = gaussians.opacities.clamp(1e-6, 1 - 1e-6)
    return -(a * torch.log(a) + (1 - a) * torch.log(1 - a)).mean()


def flatness_loss(gaussians: GaussianParams, extent: float) -> torch.Tensor:
    """Mean smallest scale relative to the object's extent (0 = every Gaussian is a flat disc)."""
    return (gaussians.scales.min(-1).values / extent).mean()
