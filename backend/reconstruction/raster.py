"""Triangle coverage on the CPU (numpy) for UV baking and inside tests, and per-view z-buffers.

`rasterize` lists every (pixel, triangle) pair, not just the nearest surface: UV baking needs the
texel -> triangle map and the winding-number inside test needs every crossing along a ray.
Triangles are enumerated over their pixel bounding boxes in one flat array (no Python loop).
Nearest-surface rendering is the synthetic world's z-buffer rasteriser; `depth_maps` wraps it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import Cameras


@dataclass
class Fragments:
    """Pixels covered by triangles. pixel: (M,) flat index i * width + j; face: (M,); bary: (M, 3)."""

    pixel: np.ndarray
    face: np.ndarray
    bary: np.ndarray


def rasterize(xy: np.ndarray, width: int, height: int, *, max_fragments: int = 40_000_000) -> Fragments:
    """Every (pixel, triangle) pair whose pixel centre lies inside the triangle.

    xy: (F, 3, 2) triangle corners in pixel units (image spans [0, width] x [0, height]).
    Pixel centres exactly on a shared edge may be reported for both triangles; callers resolve
    overlaps (z-test, or last-write for UV charts that do not overlap).
    """
    xy = np.asarray(xy, np.float64)
    lo = np.clip(np.floor(xy.min(1) - 0.5).astype(np.int64) + 1, 0, [width, height])
    hi = np.clip(np.floor(xy.max(1) - 0.5).astype(np.int64), -1, [width - 1, height - 1])
    size = np.maximum(hi - lo + 1, 0)  # (F, 2) bbox width, height in pixels
    counts = size[:, 0] * size[:, 1]
    total = int(counts.sum())
    if total > max_fragments:
        raise ValueError(f"rasterisation would touch {total} pixels; lower the resolution")
    face = np.repeat(np.arange(len(xy)), counts)
    offset = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    bw = size[face, 0]
    px = lo[face, 0] + offset % np.maximum(bw, 1)
    py = lo[face, 1] + offset // np.maximum(bw, 1)
    bary = _barycentric(xy[face], np.stack([px + 0.5, py + 0.5], axis=1))
    inside = (bary >= -1e-9).all(1)
    return Fragments(pixel=(py * width + px)[inside], face=face[inside], bary=bary[inside])


def _barycentric(tri: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Barycentric weights (M, 3) of points p (M, 2) in triangles tri (M, 3, 2); NaN-free (degenerate -> -1)."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    v0, v1, v2 = b - a, c - a, p - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    ok = np.abs(den) > 1e-12
    den = np.where(ok, den, 1.0)
    w1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
    w2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    bary = np.stack([1.0 - w1 - w2, w1, w2], axis=1)
    bary[~ok] = -1.0
    return bary


def depth_maps(vertices: np.ndarray, faces: np.ndarray, cameras: Cameras) -> np.ndarray:
    """Z-buffer of a mesh in every view: (V, H, W) float32 camera depth, +inf where no surface.

    The synthetic world's z-buffer rasteriser does the work; only "no surface" is remapped to +inf
    so that a plain `depth <= zbuffer + tolerance` test treats it as visible.
    """
    from ..synthetic.raster import rasterize as zbuffer_rasterize

    frags = zbuffer_rasterize(np.asarray(vertices), np.asarray(faces), cameras)
    return np.where(frags.mask, frags.depth, np.inf).astype(np.float32)
