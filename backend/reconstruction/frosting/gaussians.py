"""Free 3D Gaussians (the first two Frosting stages) and the rotation maths shared by all stages.

Parameters are stored unconstrained, as 3DGS does: log scales, opacity logits, colour logits, and
unnormalised quaternions (w, x, y, z). All functions are pure torch and run on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) of quaternions q (..., 4) = (w, x, y, z), normalised here."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*q.shape[:-1], 3, 3)


def matrix_to_quat(m: torch.Tensor) -> torch.Tensor:
    """Unit quaternions (..., 4) (w, x, y, z), w >= 0, of rotation matrices m (..., 3, 3).

    Uses the largest of the four candidate denominators, so it is stable for every rotation.
    """
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    candidates = torch.stack(
        [
            torch.stack([1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], -1),
            torch.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], -1),
            torch.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], -1),
            torch.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], -1),
        ],
        dim=-2,
    )  # row i is 4 q_i q, so its norm is proportional to |q_i|
    best = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1).argmax(
        -1
    )
    q = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return torch.where(q[..., :1] < 0, -q, q)


def quat_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product a * b of quaternions (..., 4) (w, x, y, z): rotate by b, then by a."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def covariance(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Covariances (N, 3, 3) = R diag(s^2) R^T of Gaussians with quats (N, 4) and scales (N, 3)."""
    R = quat_to_matrix(quats)
    return R @ torch.diag_embed(scales**2) @ R.transpose(-1, -2)


@dataclass
class GaussianParams:
    """N free Gaussians, unconstrained storage. means (N, 3) world; quats (N, 4) wxyz; log_scales
    (N, 3); opacity_logits (N,); color_logits (N, 3) (RGB = sigmoid, no view dependence: generated
    views are not photometrically consistent enough to fit spherical harmonics)."""

    means: torch.Tensor
    quats: torch.Tensor
    log_scales: torch.Tensor
    opacity_logits: torch.Tensor
    color_logits: torch.Tensor

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def scales(self) -> torch.Tensor:
        return self.log_scales.exp()

    @property
    def opacities(self) -> torch.Tensor:
        return torch.sigmoid(self.opacity_logits)

    @property
    def colors(self) -> torch.Tensor:
        return torch.sigmoid(self.color_logits)

    def as_dict(self) -> dict[str, torch.Tensor]:
        """The gsplat-strategy naming: means, quats, scales, opacities, colors (raw storage)."""
        return {
            "means": self.means,
            "quats": self.quats,
            "scales": self.log_scales,
            "opacities": self.opacity_logits,
            "colors": self.color_logits,
        }

    @classmethod
    def from_dict(cls, d) -> "GaussianParams":
        return cls(d["means"], d["quats"], d["scales"], d["opacities"], d["colors"])


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def init_from_mesh(mesh: trimesh.Trimesh, count: int, *, seed: int = 0, opacity: float = 0.5) -> GaussianParams:
    """`count` Gaussians on the surface of `mesh` (the visual hull), coloured from its vertex colours.

    Scales start at the mean distance to the 3 nearest neighbours (isotropic), as 3DGS does for
    SfM points; initialising on the hull instead of in the cube gives no background Gaussians.
    """
    points, face = trimesh.sample.sample_surface(mesh, count, seed=seed)
    points = np.asarray(points)
    if mesh.visual.kind == "vertex":
        rgb = np.asarray(mesh.visual.vertex_colors)[:, :3][mesh.faces[face]].mean(1) / 255.0
    else:
        rgb = np.full((len(points), 3), 0.5)
    dist, _ = cKDTree(points).query(points, k=4)
    scale = np.clip(dist[:, 1:].mean(1), 1e-4, None)
    rng = np.random.default_rng(seed)
    quats = rng.normal(size=(len(points), 4))
    f32 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    return GaussianParams(
        means=f32(points),
        quats=f32(quats / np.linalg.norm(quats, axis=1, keepdims=True)),
        log_scales=f32(np.log(np.repeat(scale[:, None], 3, axis=1))),
        opacity_logits=f32(np.full(len(points), _logit(np.array(opacity)))),
        color_logits=f32(_logit(rgb)),
    )
