"""Pinhole cameras of the multi-view generator's world frame.

Conventions (used everywhere in the project):
- World: z up, object at the origin, units = the generator's units (SV3D orbit radius 2).
- Camera: OpenCV style, x right, y down, z forward (looking along +z); `R, t` map world -> camera:
  X_cam = R @ X_world + t.
- Pixels: continuous (u, v) with u along the width; pixel column j covers [j, j+1), so its centre
  is u = j + 0.5 and the image spans [0, W] x [0, H]. With `grid_sample(align_corners=False)` the
  normalised coordinate is x = 2 u / W - 1.
- SV3D-p orbit: frame i (0..19) at azimuth (i+1) * 360/21 deg, frame 20 at azimuth 0 = the input
  view; elevation 10 deg; radius 2; vertical and horizontal FOV 33.8 deg (square images).
  Camera centre C = r (cos e cos a, cos e sin a, sin e): increasing azimuth turns counter-clockwise
  seen from +z. Whether real SV3D output turns the same way is pinned by the SV3D tests.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SV3D_NUM_FRAMES = 21
SV3D_INPUT_FRAME = 20
SV3D_FOV_DEG = 33.8
SV3D_RADIUS = 2.0
SV3D_ELEVATION_DEG = 10.0


def sv3d_azimuths_deg(num_frames: int = SV3D_NUM_FRAMES) -> np.ndarray:
    """Azimuth of each SV3D-p frame in degrees: (i+1)*360/n for i < n-1, and 0 for the last (input)."""
    return (np.arange(1, num_frames + 1) * 360.0 / num_frames) % 360.0


def look_at(
    center: np.ndarray, target: np.ndarray = np.zeros(3), up: np.ndarray = np.array([0.0, 0.0, 1.0])
) -> tuple[np.ndarray, np.ndarray]:
    """World->camera rotation R (3, 3) and translation t (3,) for a camera at `center` looking at `target`."""
    forward = np.asarray(target, np.float64) - np.asarray(center, np.float64)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-8:  # looking straight up/down: any right vector will do
        right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])  # rows: camera x, y, z axes in world coordinates
    t = -R @ np.asarray(center, np.float64)
    return R, t


def intrinsics(fov_deg: float, width: int, height: int) -> np.ndarray:
    """K (3, 3) for a square-pixel camera whose vertical FOV is `fov_deg`, principal point at the centre."""
    focal = 0.5 * height / math.tan(math.radians(fov_deg) / 2.0)
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Cameras:
    """V pinhole cameras. K (V, 3, 3), R (V, 3, 3), t (V, 3) world->camera; images are width x height."""

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    width: int
    height: int
    azimuth_deg: np.ndarray  # (V,) orbit azimuth of each view (informative; R, t are authoritative)
    elevation_deg: np.ndarray  # (V,)

    def __len__(self) -> int:
        return self.K.shape[0]

    @property
    def P(self) -> np.ndarray:
        """Projection matrices (V, 3, 4) = K [R | t], pixel coordinates as in the module docstring."""
        return self.K @ np.concatenate([self.R, self.t[:, :, None]], axis=2)

    @property
    def centers(self) -> np.ndarray:
        """Camera centres in the world frame (V, 3)."""
        return -np.einsum("vji,vj->vi", self.R, self.t)

    def resized(self, width: int, height: int) -> "Cameras":
        """The same cameras for images resampled to width x height (K scaled, pixel convention kept)."""
        scale = np.diag([width / self.width, height / self.height, 1.0])
        return Cameras(scale @ self.K, self.R, self.t, width, height, self.azimuth_deg, self.elevation_deg)

    def subset(self, indices) -> "Cameras":
        idx = np.asarray(indices)
        return Cameras(
            self.K[idx],
            self.R[idx],
            self.t[idx],
            self.width,
            self.height,
            self.azimuth_deg[idx],
            self.elevation_deg[idx],
        )

    def to_dict(self) -> dict:
        return {
            "convention": "opencv world->camera, z up world, pixel centres at +0.5",
            "width": self.width,
            "height": self.height,
            "K": self.K.tolist(),
            "R": self.R.tolist(),
            "t": self.t.tolist(),
            "P": self.P.tolist(),
            "azimuth_deg": self.azimuth_deg.tolist(),
            "elevation_deg": self.elevation_deg.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Cameras":
        return cls(
            K=np.asarray(data["K"], np.float64),
            R=np.asarray(data["R"], np.float64),
            t=np.asarray(data["t"], np.float64),
            width=int(data["width"]),
            height=int(data["height"]),
            azimuth_deg=np.asarray(data["azimuth_deg"], np.float64),
            elevation_deg=np.asarray(data["elevation_deg"], np.float64),
        )

    def save_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load_json(cls, path: str | Path) -> "Cameras":
        return cls.from_dict(json.loads(Path(path).read_text()))


def orbit_cameras(
    azimuth_deg: np.ndarray | None = None,
    elevation_deg: float | np.ndarray = SV3D_ELEVATION_DEG,
    *,
    size: int = 576,
    radius: float = SV3D_RADIUS,
    fov_deg: float = SV3D_FOV_DEG,
) -> Cameras:
    """Cameras on an orbit around the origin; defaults are the 21 SV3D-p frames at `size` px."""
    az = sv3d_azimuths_deg() if azimuth_deg is None else np.asarray(azimuth_deg, np.float64)
    el = np.broadcast_to(np.asarray(elevation_deg, np.float64), az.shape).copy()
    a, e = np.radians(az), np.radians(el)
    centers = radius * np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], axis=-1)
    Rs, ts = zip(*(look_at(c) for c in centers))
    K = np.broadcast_to(intrinsics(fov_deg, size, size), (len(az), 3, 3)).copy()
    return Cameras(K, np.stack(Rs), np.stack(ts), size, size, az, el)


def project_points(P, points):
    """Project world points with 3x4 matrices; works on numpy arrays and torch tensors alike.

    P: (..., 3, 4); points: (..., N, 3) broadcastable against P's batch dims.
    Returns (uv (..., N, 2) in pixels, depth (..., N) along the optical axis; <= 0 means behind).
    """
    cam = points @ P[..., :3, :3].swapaxes(-1, -2) + P[..., None, :3, 3]
    depth = cam[..., 2]
    away_from_zero = depth + 1e-12 * (1 - 2 * (depth < 0))  # keeps the sign; callers mask depth <= 0
    return cam[..., :2] / away_from_zero[..., None], depth
