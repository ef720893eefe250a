"""Colours for a reconstructed surface from the orbit views: per vertex, and an optional UV texture.

A surface point takes the weighted mean of the view pixels it projects to, over the views that see
it: visible = not behind the mesh's own z-buffer in that view (so the back of a leg does not take
the colour of the body in front of it), weighted by cos^2 of the angle between the surface normal
and the direction to the camera (grazing views smear) and by the mask (silhouette pixels mix with
the white background). Points no view sees take the colour of the nearest point that was seen.
"""

from __future__ import annotations

import numpy as np
import trimesh
from PIL import Image
from scipy import ndimage
from scipy.spatial import cKDTree

from ..geometry import Cameras, project_points
from ..progress import Progress
from .raster import depth_maps, rasterize


def sample_bilinear(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear samples (N, C) of image (H, W, C) at pixel coordinates uv (N, 2); edges clamp."""
    H, W = image.shape[:2]
    x = np.clip(uv[:, 0] - 0.5, 0, W - 1)
    y = np.clip(uv[:, 1] - 0.5, 0, H - 1)
    x0 = np.minimum(np.floor(x).astype(np.int64), W - 2 if W > 1 else 0)
    y0 = np.minimum(np.floor(y).astype(np.int64), H - 2 if H > 1 else 0)
    x1, y1 = np.minimum(x0 + 1, W - 1), np.minimum(y0 + 1, H - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def project_colors(
    points: np.ndarray,
    normals: np.ndarray,
    images: np.ndarray,
    masks: np.ndarray,
    cameras: Cameras,
    zbuffer: np.ndarray,
    *,
    depth_tolerance: float = 0.015,
) -> tuple[np.ndarray, np.ndarray]:
    """Visibility-weighted colours of surface points.

    points, normals: (N, 3) world frame (unit outward normals). images (V, H, W, 3), masks (V, H, W)
    for `cameras`; zbuffer (V, h, w) is the surface's own depth per view at any resolution.
    Returns (colours (N, 3) float in [0, 1], total weight (N,); weight 0 = seen by no view).
    """
    points = np.asarray(points, np.float64)
    V, H, W = masks.shape
    zh, zw = zbuffer.shape[1:]
    accum = np.zeros((len(points), 3))
    weight = np.zeros(len(points))
    uv, depth = project_points(cameras.P, points[None])
    to_camera = cameras.centers[:, None, :] - points[None]
    to_camera /= np.linalg.norm(to_camera, axis=-1, keepdims=True)
    for v in range(V):
        u = uv[v]
        inside = (depth[v] > 0) & (u[:, 0] >= 0) & (u[:, 0] < W) & (u[:, 1] >= 0) & (u[:, 1] < H)
        zi = np.clip((u[:, 1] * zh / H).astype(np.int64), 0, zh - 1)
        zj = np.clip((u[:, 0] * zw / W).astype(np.int64), 0, zw - 1)
        visible = inside & (depth[v] <= zbuffer[v, zi, zj] + depth_tolerance)
        cos = np.clip((normals * to_camera[v]).sum(1), 0.0, 1.0)
        idx = np.flatnonzero(visible & (cos > 0))
        if len(idx) == 0:
            continue
        m = sample_bilinear(masks[v][..., None], u[idx])[:, 0]
        w = cos[idx] ** 2 * np.clip(m, 0, 1)
        accum[idx] += w[:, None] * sample_bilinear(images[v], u[idx])
        weight[idx] += w
    colors = np.where(weight[:, None] > 0, accum / np.maximum(weight, 1e-12)[:, None], np.nan)
    return _fill_unseen(points, colors, weight > 1e-6), weight


def _fill_unseen(points: np.ndarray, colors: np.ndarray, seen: np.ndarray) -> np.ndarray:
    if seen.all():
        return colors
    if not seen.any():
        return np.full_like(colors, 0.5)
    _, nearest = cKDTree(points[seen]).query(points[~seen])
    colors = colors.copy()
    colors[~seen] = colors[seen][nearest]
    return colors


def vertex_colors(
    mesh: trimesh.Trimesh,
    images: np.ndarray,
    masks: np.ndarray,
    cameras: Cameras,
    *,
    zbuffer_size: int = 288,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Vertex colours (N, 4) uint8 RGBA of `mesh` and the z-buffers (V, s, s) used for visibility."""
    zcams = cameras.resized(zbuffer_size, zbuffer_size)
    zbuffer = depth_maps(mesh.vertices, mesh.faces, zcams)
    if progress:
        progress.update(0.5, "vertex colours")
    rgb, _ = project_colors(mesh.vertices, mesh.vertex_normals, images, masks, cameras, zbuffer)
    rgba = np.concatenate([np.round(np.clip(rgb, 0, 1) * 255), np.full((len(rgb), 1), 255)], axis=1)
    return rgba.astype(np.uint8), zbuffer


def _unwrap(mesh: trimesh.Trimesh, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """xatlas charts + packing: (vertex map (N',), faces (F, 3), uvs (N', 2) in [0, 1]).

    One chart-growing iteration and block-aligned packing: about 3x faster than the defaults on a
    20k-face hull, for a few percent less atlas utilisation.
    """
    import xatlas

    atlas = xatlas.Atlas()
    atlas.add_mesh(np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.uint32))
    charts = xatlas.ChartOptions()
    charts.max_iterations = 1
    pack = xatlas.PackOptions()
    pack.resolution, pack.padding, pack.blockAlign = size, 2, True
    atlas.generate(charts, pack)
    return atlas[0]


def bake_texture(
    mesh: trimesh.Trimesh,
    images: np.ndarray,
    masks: np.ndarray,
    cameras: Cameras,
    zbuffer: np.ndarray,
    *,
    size: int = 1024,
) -> trimesh.Trimesh:
    """A copy of `mesh` unwrapped with xatlas and textured (size x size) from the views.

    Each texel's 3D point (barycentric in its UV triangle) is coloured exactly like a vertex; texels
    outside every chart take the nearest chart texel's colour so bilinear lookups at seams stay clean.
    """
    vmap, faces, uvs = _unwrap(mesh, size)
    vertices = np.asarray(mesh.vertices)[vmap]
    normals = np.asarray(mesh.vertex_normals)[vmap]
    texel_xy = np.stack([uvs[:, 0] * size, (1.0 - uvs[:, 1]) * size], axis=1)  # image row 0 = v 1
    frag = rasterize(texel_xy[faces], size, size)
    pts = np.einsum("mk,mkd->md", frag.bary, vertices[faces[frag.face]])
    nrm = np.einsum("mk,mkd->md", frag.bary, normals[faces[frag.face]])
    nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
    rgb, _ = project_colors(pts, nrm, images, masks, cameras, zbuffer)
    texture = np.zeros((size * size, 3))
    filled = np.zeros(size * size, bool)
    texture[frag.pixel], filled[frag.pixel] = rgb, True
    texture, filled = texture.reshape(size, size, 3), filled.reshape(size, size)
    if filled.any():
        _, (iy, ix) = ndimage.distance_transform_edt(~filled, return_indices=True)
        texture = texture[iy, ix]
    image = Image.fromarray(np.round(np.clip(texture, 0, 1) * 255).astype(np.uint8))
    visual = trimesh.visual.TextureVisuals(uv=uvs, image=image)
    return trimesh.Trimesh(vertices, faces.astype(np.int64), visual=visual, process=False)
