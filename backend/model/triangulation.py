"""Differentiable linear (DLT) triangulation of 2D keypoints seen in several calibrated views.

Each view k with projection P_k and observation (u, v) gives two linear equations in the
homogeneous point X: (u p3 - p1) X = 0, (v p3 - p2) X = 0. Rows are normalised to unit length in
their xyz part (so each view's vote is a geometric, not an algebraic, error), weighted by a
per-view confidence, and the inhomogeneous least-squares system is solved with a small ridge term;
the ridge keeps the solve defined with a single view (it then returns the point of the ray closest
to the origin, i.e. no depth information - which is the K=1 ablation's point).
"""

from __future__ import annotations

import torch


def triangulate(
    P: torch.Tensor, uv: torch.Tensor, weights: torch.Tensor | None = None, ridge: float = 1e-6
) -> torch.Tensor:
    """P (B, K, 3, 4), uv (B, K, N, 2) pixels, weights (B, K, N) >= 0 or None -> points (B, N, 3)."""
    B, K, N, _ = uv.shape
    p1, p2, p3 = P[:, :, None, 0, :], P[:, :, None, 1, :], P[:, :, None, 2, :]  # (B, K, 1, 4)
    rows = torch.stack([uv[..., 0:1] * p3 - p1, uv[..., 1:2] * p3 - p2], dim=3)  # (B, K, N, 2, 4)
    rows = rows / rows[..., :3].norm(dim=-1, keepdim=True).clamp_min(1e-12)
    if weights is not None:
        rows = rows * weights[..., None, None].sqrt()
    A = rows[..., :3].permute(0, 2, 1, 3, 4).reshape(B, N, 2 * K, 3)
    b = -rows[..., 3].permute(0, 2, 1, 3).reshape(B, N, 2 * K)
    AtA = A.transpose(-1, -2) @ A + ridge * torch.eye(3, dtype=A.dtype, device=A.device)
    Atb = (A.transpose(-1, -2) @ b[..., None])[..., 0]
    return torch.linalg.solve(AtA, Atb)
