"""Reconstruction quality against a ground-truth mesh in the same world frame.

- Chamfer distance: mean of the two directed mean nearest-neighbour distances between surface
  samples, as a percentage of the ground truth's bounding-box diagonal (scale-free).
- Volume IoU: occupancy of both meshes on one voxel grid over their joint bounding box; inside is
  decided by the winding number along +z rays (closed meshes, no ray-tracing library needed).
- Normal consistency: mean |cos| between each sample's normal and its nearest neighbour's normal on
  the other surface, both directions (1 = identical orientation field).
- PSNR of re-rendered views: the reconstruction rendered at the input cameras against the input
  views, inside the union of both masks (the white background would inflate it otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from ..geometry import Cameras
from .raster import rasterize


@dataclass
class Quality:
    chamfer_pct: float
    volume_iou: float
    normal_consistency: float
    psnr: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _samples(mesh: trimesh.Trimesh, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    points, face = trimesh.sample.sample_surface(mesh, count, seed=seed)
    return np.asarray(points), np.asarray(mesh.face_normals)[face]


def chamfer_percent(pred: trimesh.Trimesh, gt: trimesh.Trimesh, samples: int = 30_000, seed: int = 0) -> float:
    """Symmetric Chamfer distance as % of gt's bbox diagonal."""
    p, _ = _samples(pred, samples, seed)
    g, _ = _samples(gt, samples, seed + 1)
    d_pg, _ = cKDTree(g).query(p)
    d_gp, _ = cKDTree(p).query(g)
    diagonal = float(np.linalg.norm(gt.extents))
    return float(100.0 * 0.5 * (d_pg.mean() + d_gp.mean()) / diagonal)


def normal_consistency(pred: trimesh.Trimesh, gt: trimesh.Trimesh, samples: int = 30_000, seed: int = 0) -> float:
    p, pn = _samples(pred, samples, seed)
    g, gn = _samples(gt, samples, seed + 1)
    _, i_pg = cKDTree(g).query(p)
    _, i_gp = cKDTree(p).query(g)
    return float(0.5 * (np.abs((pn * gn[i_pg]).sum(1)).mean() + np.abs((gn * pn[i_gp]).sum(1)).mean()))


_OFF_GRID = np.array([1.37e-5, 2.71e-5])


def occupancy(mesh: trimesh.Trimesh, origin: np.ndarray, spacing: float, shape: tuple[int, int, int]) -> np.ndarray:
    """Inside test (shape bool, indexed x, y, z) of voxel centres origin + (i, j, k) * spacing.

    Winding number along a +z ray: the mesh is rasterised orthographically onto the xy grid and the
    crossings above each voxel are summed with the sign of their face normal's z (+1 leaving, -1
    entering). Unlike parity this stays right for overlapping closed parts (a creature built from
    primitives); the mesh must be closed and outward-oriented.
    """
    nx, ny, nz = shape
    vertices = np.asarray(mesh.vertices)
    xy = (vertices[:, :2] - origin[:2]) / spacing + 0.5  # voxel centre -> pixel centre
    xy += _OFF_GRID  # a ray through a shared edge would otherwise be counted twice
    frag = rasterize(xy[mesh.faces], nx, ny)  # pixel index = y * nx + x
    z = (frag.bary * vertices[mesh.faces[frag.face], 2]).sum(1)
    sign = np.sign(np.asarray(mesh.face_normals)[frag.face, 2])
    order = np.lexsort((z, frag.pixel))
    pixel, z, sign = frag.pixel[order], z[order], sign[order]
    cumulative = np.concatenate([[0.0], np.cumsum(sign)])
    key = pixel.astype(np.float64) * 1e6 + z  # sorts by pixel, then z (|z| << 1e6 / 2)
    ends = np.searchsorted(pixel, np.arange(nx * ny), side="right")
    zs = origin[2] + np.arange(nz) * spacing
    query = (np.arange(nx * ny)[:, None] * 1e6 + zs[None, :]).ravel()
    starts = np.searchsorted(key, query, side="right").reshape(nx * ny, nz)
    winding = cumulative[ends][:, None] - cumulative[starts]
    return (winding > 0.5).reshape(ny, nx, nz).transpose(1, 0, 2)


def volume_iou(pred: trimesh.Trimesh, gt: trimesh.Trimesh, resolution: int = 128) -> float:
    lo = np.minimum(pred.bounds[0], gt.bounds[0])
    hi = np.maximum(pred.bounds[1], gt.bounds[1])
    spacing = float((hi - lo).max()) / (resolution - 1)
    shape = tuple(int(n) for n in np.ceil((hi - lo) / spacing).astype(int) + 1)
    a = occupancy(pred, lo, spacing, shape)
    b = occupancy(gt, lo, spacing, shape)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def psnr(rendered: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB of images in [0, 1] (..., H, W, 3), over the pixels where mask (..., H, W) > 0.5."""
    diff2 = (np.asarray(rendered, np.float64) - np.asarray(target, np.float64)) ** 2
    if mask is not None:
        diff2 = diff2[np.asarray(mask) > 0.5]
    mse = float(diff2.mean()) if diff2.size else 0.0
    return float("inf") if mse == 0 else float(10.0 * np.log10(1.0 / mse))


RenderFn = Callable[[trimesh.Trimesh, Cameras], tuple[np.ndarray, np.ndarray]]


def render_colors(mesh: trimesh.Trimesh, cameras: Cameras) -> tuple[np.ndarray, np.ndarray]:
    """Unlit render of a vertex-coloured mesh on white with the synthetic world's rasteriser.

    Unlit, because the colours were baked from lit views: the lighting is already in them.
    Returns images (V, H, W, 3) float32 in [0, 1] and masks (V, H, W) float32.
    """
    from ..synthetic.raster import rasterize as zbuffer_rasterize

    frags = zbuffer_rasterize(np.asarray(mesh.vertices), np.asarray(mesh.faces), cameras)
    colors = np.asarray(mesh.visual.vertex_colors, np.float32)[:, :3] / 255.0
    face = np.maximum(frags.face, 0)
    rgb = np.einsum("vhwk,vhwkc->vhwc", frags.bary, colors[np.asarray(mesh.faces)[face]])
    mask = frags.mask
    return np.where(mask[..., None], rgb, 1.0).astype(np.float32), mask.astype(np.float32)


def rerender_psnr(
    mesh: trimesh.Trimesh, images: np.ndarray, masks: np.ndarray, cameras: Cameras, render: RenderFn = render_colors
) -> float:
    """PSNR of `mesh` rendered at `cameras` (render(mesh, cameras) -> (images, masks)) vs the views."""
    rendered, rendered_masks = render(mesh, cameras)
    union = np.maximum(np.asarray(masks) > 0.5, np.asarray(rendered_masks) > 0.5)
    return psnr(rendered, images, union)


def evaluate(
    pred: trimesh.Trimesh, gt: trimesh.Trimesh, *, samples: int = 30_000, iou_resolution: int = 128
) -> Quality:
    """Geometry metrics of `pred` against `gt` (both in the same frame); PSNR is added by the caller."""
    return Quality(
        chamfer_pct=chamfer_percent(pred, gt, samples),
        volume_iou=volume_iou(pred, gt, iou_resolution),
        normal_consistency=normal_consistency(pred, gt, samples),
    )
