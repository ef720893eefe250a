"""Backend-only mesh geometry for rigging: inside tests (winding numbers), keypoint repair.
Meshes are read by `keydiff3d.mesh_io`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..geometry.mesh import vertex_normals


def inside_test(vertices: np.ndarray, faces: np.ndarray, cells: int = 24) -> Callable[[np.ndarray], np.ndarray]:
    """points (M, 3) -> (M,) bool: generalised winding number >= 0.5. Unlike ray parity this stays
    right for meshes made of overlapping closed shells and tolerates small holes. The mesh is first
    coarsened by vertex clustering on a grid of `cells` along its largest side: the spanning tree's
    volume penalty only needs the coarse shape, and the test then costs well under 1 ms per point."""
    v, f = cluster_vertices(np.asarray(vertices, np.float64), np.asarray(faces, np.int64), cells)
    tri = v.astype(np.float32)[f]  # (F, 3, 3)
    return lambda points: winding_number(points, tri) >= 0.5


def cluster_vertices(vertices: np.ndarray, faces: np.ndarray, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Vertex-clustering decimation: vertices in one grid cell merge into their mean; collapsed and
    duplicate triangles are dropped. Keeps face orientation, so winding numbers stay meaningful."""
    lo = vertices.min(0)
    size = float(np.ptp(vertices, axis=0).max()) or 1.0
    cell = np.floor((vertices - lo) / (size / cells)).astype(np.int64)
    _, label, counts = np.unique(
        cell[:, 0] * (cells + 1) ** 2 + cell[:, 1] * (cells + 1) + cell[:, 2], return_inverse=True, return_counts=True
    )
    merged = np.zeros((len(counts), 3))
    for axis in range(3):
        merged[:, axis] = np.bincount(label, vertices[:, axis], len(counts)) / counts
    f = label[faces]
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])]
    # same triangle, same orientation -> keep one; opposite orientations stay (they cancel, as they should)
    first = np.argmin(f, axis=1)[:, None]
    canonical = np.take_along_axis(f, (first + np.arange(3)) % 3, axis=1)  # cyclic: orientation kept
    _, keep = np.unique(canonical, axis=0, return_index=True)
    return merged, f[np.sort(keep)]


def winding_number(points: np.ndarray, triangles: np.ndarray, chunk: int = 64) -> np.ndarray:
    """(M,) generalised winding number of (M, 3) points w.r.t. triangles (F, 3, 3): the sum of the
    triangles' signed solid angles / 4 pi (Van Oosterom & Strackee)."""
    p = np.asarray(points, triangles.dtype).reshape(-1, 3)
    out = np.empty(len(p))
    for start in range(0, len(p), chunk):
        rel = triangles[None, :, :, :] - p[start : start + chunk, None, None, :]  # (m, F, 3, 3)
        a, b, c = rel[:, :, 0], rel[:, :, 1], rel[:, :, 2]
        la, lb, lc = (np.sqrt((x * x).sum(-1)) for x in (a, b, c))
        det = (a * np.cross(b, c)).sum(-1)
        den = la * lb * lc + (a * b).sum(-1) * lc + (a * c).sum(-1) * lb + (b * c).sum(-1) * la
        out[start : start + chunk] = np.arctan2(det, den).sum(1, dtype=np.float64) / (2.0 * np.pi)
    return out


def project_inside(
    keypoints: np.ndarray, vertices: np.ndarray, faces: np.ndarray, inside, depths=(0.02, 0.01, 0.005)
) -> tuple[np.ndarray, list[int]]:
    """Move keypoints outside the mesh to just inside it: the nearest vertex pushed against its
    normal by the first of `depths` (x the mesh's largest side) that `inside` accepts (thin parts
    need a shallow push), else by the first. Returns (keypoints, moved indices)."""
    k = np.asarray(keypoints, np.float64).copy()
    outside = np.flatnonzero(~inside(k))
    if len(outside) == 0:
        return k, []
    v = np.asarray(vertices, np.float64)
    normals = vertex_normals(v, np.asarray(faces, np.int64))
    nearest = np.array([int(np.argmin(((v - k[i]) ** 2).sum(1))) for i in outside])
    extent = float(np.ptp(v, axis=0).max())
    candidates = np.stack([v[nearest] - d * extent * normals[nearest] for d in depths])  # (D, M, 3)
    accepted = inside(candidates.reshape(-1, 3)).reshape(len(depths), len(outside))
    choice = np.where(accepted.any(0), accepted.argmax(0), 0)
    k[outside] = candidates[choice, np.arange(len(outside))]
    return k, outside.tolist()
