"""From a scalar field on a voxel grid to a clean, decimated, watertight-when-possible triangle mesh.

Shared by the visual hull (field = soft silhouette vote) and Gaussian Frosting (field = Gaussian
density): marching cubes -> largest component -> Taubin smoothing (no shrinkage, unlike plain
Laplacian) -> quadric decimation to the rig's face budget -> repair, with what could not be
repaired reported instead of hidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh

from ..errors import InputError


@dataclass(frozen=True)
class Grid:
    """An axis-aligned cubic voxel grid: sample (i, j, k) sits at origin + (i, j, k) * spacing (x, y, z)."""

    origin: np.ndarray  # (3,)
    spacing: float
    resolution: int

    @classmethod
    def cube(cls, half: float, resolution: int) -> "Grid":
        return cls(np.full(3, -half), 2.0 * half / (resolution - 1), resolution)

    def axis(self) -> np.ndarray:
        """Coordinates (resolution,) along one axis (the grid is cubic and axis-aligned)."""
        return self.origin[0] + np.arange(self.resolution) * self.spacing


@dataclass
class MeshReport:
    """What cleaning did and what it could not fix (shown to the user, never silently dropped)."""

    components: int = 0
    faces_before_decimation: int = 0
    watertight: bool = False
    repaired: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def extract_surface(values: np.ndarray, grid: Grid, level: float) -> trimesh.Trimesh:
    """Marching cubes of `values` (R, R, R) indexed (x, y, z) at `level`; inside = values > level.

    The grid border is padded as outside so the surface is closed even where the field touches it.
    """
    from skimage.measure import marching_cubes

    if not (values.max() > level > values.min()):
        raise InputError("the reconstruction is empty: no voxel is inside the object in enough views")
    low = min(float(values.min()), level - 1.0)
    padded = np.pad(values, 1, constant_values=low)
    verts, faces, _, _ = marching_cubes(padded, level=level, spacing=(grid.spacing,) * 3)
    verts += grid.origin - grid.spacing  # undo the one-voxel pad
    mesh = trimesh.Trimesh(verts, faces, process=True)
    if mesh.volume < 0:  # skimage's winding depends on the gradient's sign; we want outward normals
        mesh.invert()
    return mesh


def clean_mesh(
    mesh: trimesh.Trimesh,
    *,
    target_faces: int,
    smooth_iterations: int = 10,
    report: MeshReport | None = None,
) -> tuple[trimesh.Trimesh, MeshReport]:
    """Largest component, Taubin smoothing, decimation to about `target_faces`, repair."""
    import fast_simplification

    report = report or MeshReport()
    parts = mesh.split(only_watertight=False)
    report.components = len(parts)
    if len(parts) > 1:
        mesh = max(parts, key=lambda m: len(m.faces))
        report.repaired.append(f"kept the largest of {len(parts)} components")
    if smooth_iterations > 0:
        trimesh.smoothing.filter_taubin(mesh, lamb=0.5, nu=0.52, iterations=smooth_iterations)
    report.faces_before_decimation = len(mesh.faces)
    if len(mesh.faces) > target_faces:
        v, f = fast_simplification.simplify(mesh.vertices, mesh.faces, target_count=int(target_faces))
        mesh = trimesh.Trimesh(v, f, process=True)
    mesh = repair(mesh, report)
    return mesh, report


def repair(mesh: trimesh.Trimesh, report: MeshReport, attempts: int = 2) -> trimesh.Trimesh:
    """Remove degenerate/duplicate faces; where the surface is open or non-manifold (decimation can
    leave a few such edges), drop the faces around the bad edges and fill the holes. Normals are made
    consistent and outward. What could not be repaired is recorded in `report.problems`."""
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.update_faces(mesh.unique_faces())
    mesh.remove_unreferenced_vertices()
    for _ in range(attempts):
        if mesh.is_watertight:
            break
        bad = _faces_on_bad_edges(mesh)
        if len(bad) and len(bad) < 0.01 * len(mesh.faces):
            keep = np.ones(len(mesh.faces), bool)
            keep[bad] = False
            mesh.update_faces(keep)
            mesh.remove_unreferenced_vertices()
            report.repaired.append(f"removed {len(bad)} faces around non-manifold edges")
        trimesh.repair.fill_holes(mesh)
        report.repaired.append("filled holes")
    trimesh.repair.fix_normals(mesh)
    report.watertight = bool(mesh.is_watertight)
    if not report.watertight:
        report.problems.append("the mesh is not watertight (open boundary or non-manifold edges remain)")
    return mesh


def _faces_on_bad_edges(mesh: trimesh.Trimesh) -> np.ndarray:
    """Faces having an edge used by a number of faces other than two."""
    _, inverse, counts = np.unique(mesh.edges_sorted, axis=0, return_inverse=True, return_counts=True)
    return np.unique(mesh.edges_face[counts[inverse.ravel()] != 2])
