"""Level-set extraction of the regularised Gaussians into the base mesh.

The Gaussians' opacity-weighted density is splatted onto a voxel grid; its `level` set is the
surface. After SuGaR regularisation the Gaussians sit on the surface as a thin sheet, so the
region inside the sheet is filled before marching cubes (otherwise the inner side of the sheet
becomes a second surface); holes in the sheet are closed first. Cleaning and decimation to the
rig's face budget happen here, before the frosting layer is bound to the mesh (decimating afterwards
would break the binding).
"""

from __future__ import annotations

import numpy as np
import torch
import trimesh
from scipy import ndimage

from ...geometry import CUBE_HALF
from ..meshing import Grid, MeshReport, clean_mesh, extract_surface
from ..metrics import occupancy
from .gaussians import GaussianParams, quat_to_matrix


def density_grid(gaussians: GaussianParams, grid: Grid, *, max_window: int = 6, chunk: int = 4096) -> torch.Tensor:
    """Density (R, R, R) indexed (x, y, z): sum of alpha_g exp(-1/2 mahalanobis^2) at voxel centres.

    Each Gaussian is evaluated in a window of (2w+1)^3 voxels around its centre, w from the 99th
    percentile of the largest scale (at most `max_window`). Scales are widened by half a voxel so
    flat Gaussians still register on the grid (the density is anti-aliased to the grid).
    """
    device = gaussians.means.device
    R = grid.resolution
    spacing = grid.spacing
    origin = torch.as_tensor(grid.origin, dtype=torch.float32, device=device)
    scales = torch.sqrt(gaussians.scales**2 + (0.5 * spacing) ** 2)
    w = int(np.clip(np.ceil(3 * float(torch.quantile(scales.max(-1).values, 0.99)) / spacing), 1, max_window))
    r = torch.arange(-w, w + 1, device=device)
    offsets = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)  # (K, 3)
    rot = quat_to_matrix(gaussians.quats)
    out = torch.zeros(R**3, device=device)
    for s in range(0, len(gaussians), chunk):
        sl = slice(s, s + chunk)
        centre = torch.round((gaussians.means[sl] - origin) / spacing).long()  # (n, 3)
        idx = centre[:, None, :] + offsets[None]  # (n, K, 3)
        inside = ((idx >= 0) & (idx < R)).all(-1)
        pos = origin + idx.float() * spacing
        local = torch.einsum("nji,nkj->nki", rot[sl], pos - gaussians.means[sl, None, :])
        value = gaussians.opacities[sl, None] * torch.exp(-0.5 * ((local / scales[sl, None, :]) ** 2).sum(-1))
        flat = (idx[..., 0] * R + idx[..., 1]) * R + idx[..., 2]
        out.index_add_(0, flat[inside], value[inside])
    return out.reshape(R, R, R)


def base_mesh(
    gaussians: GaussianParams,
    *,
    resolution: int = 256,
    half: float = CUBE_HALF,
    level: float = 0.5,
    target_faces: int = 20_000,
    smooth_iterations: int = 5,
    hull: trimesh.Trimesh | None = None,
) -> tuple[trimesh.Trimesh, MeshReport]:
    """Closed base mesh (world frame) of the Gaussians' density level set, decimated to target_faces.

    `hull` (the visual hull, a superset of the object) detects a sheet whose inside leaked out
    through holes: then the holes are closed harder (see `fill_sheet`).
    """
    grid = Grid.cube(half, resolution)
    with torch.no_grad():
        density = density_grid(gaussians, grid).clamp(max=2.0).cpu().numpy()
    report = MeshReport()
    reference = None
    if hull is not None:
        reference = int(occupancy(hull, grid.origin, grid.spacing, (resolution,) * 3).sum())
    solid = fill_sheet(density > level, reference, report)
    field = np.where(solid, np.maximum(density, 1.0), density)  # filled interior, density falloff outside
    raw = extract_surface(field, grid, level)
    return clean_mesh(raw, target_faces=target_faces, smooth_iterations=smooth_iterations, report=report)


def fill_sheet(
    sheet: np.ndarray, reference_voxels: int | None, report: MeshReport, closings: tuple[int, ...] = (2, 4, 8)
) -> np.ndarray:
    """The solid bounded by a thin occupied sheet (R, R, R bool).

    The sheet is dilated by r voxels (sealing holes narrower than 2r), its inside filled, and the
    filled solid eroded back by r (a closing of the *filled* shape: a closing of the thin sheet
    alone would reopen the holes). A solid under half the visual hull's volume means the inside
    leaked through a wider hole, so r grows (2, 4, 8: larger r also bridges gaps between parts
    narrower than r, hence smallest first)."""
    solid = sheet
    for iterations in closings:
        filled = ndimage.binary_fill_holes(ndimage.binary_dilation(sheet, iterations=iterations))
        solid = ndimage.binary_erosion(filled, iterations=iterations) | sheet
        if reference_voxels is None or solid.sum() >= 0.5 * reference_voxels:
            if iterations != closings[0]:
                report.repaired.append(f"closed holes of up to {2 * iterations} voxels in the Gaussian sheet")
            return solid
    report.problems.append("the Gaussian sheet has large holes; the base mesh may be hollow")
    return solid
