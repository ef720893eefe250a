"""The frosting layer: Gaussians living in prisms over the base mesh's triangles.

Every vertex v of the base mesh has an inner and an outer shell point, v - a_v n_v and v + b_v n_v
(n_v the area-weighted vertex normal, a_v, b_v >= 0 the local frosting thickness). A Gaussian
belongs to one triangle and is placed by barycentric weights w (softmax of free logits) and a
shell coordinate t in [0, 1] (sigmoid): mean = sum_k w_k ((1 - t) inner_k + t outer_k). Its
rotation is stored relative to the triangle's frame (edge, in-plane perpendicular, normal).

So the Gaussians are a function of the base-mesh vertices alone: move the vertices (skinning) and
`world(...)` gives the moved Gaussians. Nothing here depends on gsplat; it runs on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import torch
import trimesh
from scipy import sparse
from scipy.spatial import cKDTree

from .gaussians import GaussianParams, matrix_to_quat, quat_multiply, quat_to_matrix


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals (M, 3) of a triangle mesh, differentiable."""
    tri = vertices[faces]  # (F, 3, 3)
    face_n = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)  # length = 2 * area
    normals = torch.zeros_like(vertices).index_add_(0, faces.reshape(-1), face_n.repeat_interleave(3, 0))
    return normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def face_frames(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Rotation (F, 3, 3) per triangle, columns = first edge, in-plane perpendicular, unit normal."""
    tri = vertices[faces]
    e1 = tri[:, 1] - tri[:, 0]
    n = torch.cross(e1, tri[:, 2] - tri[:, 0], dim=-1)
    e1 = e1 / e1.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    e2 = torch.cross(n, e1, dim=-1)
    return torch.stack([e1, e2, n], dim=-1)


@dataclass
class FrostingGaussians:
    """Gaussians bound to a base mesh (see the module docstring). M vertices, F faces, N Gaussians."""

    vertices: torch.Tensor  # (M, 3) rest-pose base-mesh vertices, world frame
    faces: torch.Tensor  # (F, 3) long
    inner: torch.Tensor  # (M,) inner shell offset >= 0 along the vertex normal
    outer: torch.Tensor  # (M,) outer shell offset >= 0
    face: torch.Tensor  # (N,) long, the triangle each Gaussian lives over
    bary_logits: torch.Tensor  # (N, 3) -> softmax barycentric weights
    shell_logits: torch.Tensor  # (N,) -> sigmoid: 0 = inner shell, 1 = outer shell
    local_quats: torch.Tensor  # (N, 4) wxyz, relative to the triangle's frame
    log_scales: torch.Tensor  # (N, 3) in the triangle's frame axes
    opacity_logits: torch.Tensor  # (N,)
    color_logits: torch.Tensor  # (N, 3) -> sigmoid RGB

    TRAINABLE = ("bary_logits", "shell_logits", "local_quats", "log_scales", "opacity_logits", "color_logits")

    def __len__(self) -> int:
        return self.face.shape[0]

    def to(self, device) -> "FrostingGaussians":
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def with_params(self, params: dict[str, torch.Tensor]) -> "FrostingGaussians":
        return replace(self, **params)

    def world(self, vertices: torch.Tensor | None = None) -> GaussianParams:
        """The Gaussians in the world frame for base-mesh `vertices` (M, 3) (default: rest pose)."""
        v = self.vertices if vertices is None else vertices
        n = vertex_normals(v, self.faces)
        inner = v - self.inner[:, None] * n
        outer = v + self.outer[:, None] * n
        w = torch.softmax(self.bary_logits, -1)[..., None]  # (N, 3, 1)
        t = torch.sigmoid(self.shell_logits)[:, None, None]
        corners = self.faces[self.face]  # (N, 3)
        means = (w * ((1 - t) * inner[corners] + t * outer[corners])).sum(1)
        frame_q = matrix_to_quat(face_frames(v, self.faces))[self.face]
        return GaussianParams(
            means, quat_multiply(frame_q, self.local_quats), self.log_scales, self.opacity_logits, self.color_logits
        )


def shell_thickness(
    mesh: trimesh.Trimesh,
    free: GaussianParams,
    *,
    neighbours: int = 16,
    minimum: float = 0.004,
    maximum: float = 0.05,
    smooth_iterations: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Inner and outer shell offsets (M,) per base vertex from the unregularised 3DGS Gaussians.

    Where the free Gaussians spread away from the surface (fur, fuzzy or thin parts) the frosting
    gets thick; where they sit on it, thin. Offsets: 90th percentile of the neighbours' signed
    distance along the normal plus twice their extent along it, clipped, then smoothed over the mesh.
    """
    means = free.means.detach().cpu().numpy()
    R = quat_to_matrix(free.quats.detach().cpu()).numpy()
    scales = free.scales.detach().cpu().numpy()
    _, idx = cKDTree(means).query(mesh.vertices, k=min(neighbours, len(means)))
    idx = idx.reshape(len(mesh.vertices), -1)
    normals = np.asarray(mesh.vertex_normals)
    signed = ((means[idx] - mesh.vertices[:, None, :]) * normals[:, None, :]).sum(-1)  # (M, k)
    along = np.abs(np.einsum("mkji,mj->mki", R[idx], normals))  # |axis . n| per axis
    extent = np.sqrt(((along * scales[idx]) ** 2).sum(-1))  # std along the normal
    outer = np.quantile(np.maximum(signed, 0) + 2 * extent, 0.9, axis=1)
    inner = np.quantile(np.maximum(-signed, 0) + 2 * extent, 0.9, axis=1)
    average = _neighbour_average(mesh)
    for _ in range(smooth_iterations):
        outer, inner = 0.5 * (outer + average @ outer), 0.5 * (inner + average @ inner)
    return np.clip(inner, minimum, maximum), np.clip(outer, minimum, maximum)


def _neighbour_average(mesh: trimesh.Trimesh) -> sparse.csr_matrix:
    """(M, M) row-stochastic matrix averaging each vertex's one-ring neighbours."""
    edges = np.asarray(mesh.edges_unique)
    M = len(mesh.vertices)
    rows, cols = np.concatenate([edges[:, 0], edges[:, 1]]), np.concatenate([edges[:, 1], edges[:, 0]])
    adjacency = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(M, M))
    degree = np.maximum(np.asarray(adjacency.sum(1)).ravel(), 1)
    return sparse.diags(1.0 / degree) @ adjacency


def init_frosting(
    mesh: trimesh.Trimesh,
    inner: np.ndarray,
    outer: np.ndarray,
    count: int,
    *,
    seed: int = 0,
) -> FrostingGaussians:
    """`count` Gaussians spread over the base mesh's triangles by area, mid-shell, flat in the
    triangle's plane, coloured from the mesh's vertex colours."""
    rng = np.random.default_rng(seed)
    area = np.asarray(mesh.area_faces)
    face = rng.choice(len(area), size=count, p=area / area.sum())
    bary = rng.dirichlet(np.ones(3), size=count)
    per_face = np.bincount(face, minlength=len(area))[face]
    tangential = np.sqrt(area[face] / np.maximum(per_face, 1)) * 0.5
    thickness = (inner + outer)[mesh.faces[face]].mean(1)
    log_scales = np.log(np.stack([tangential, tangential, np.maximum(thickness / 4, 1e-4)], 1))
    if mesh.visual.kind == "vertex":
        rgb = np.einsum("nk,nkc->nc", bary, np.asarray(mesh.visual.vertex_colors)[:, :3][mesh.faces[face]] / 255.0)
    else:
        rgb = np.full((count, 3), 0.5)
    rgb = np.clip(rgb, 1e-3, 1 - 1e-3)
    f32 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    return FrostingGaussians(
        vertices=f32(mesh.vertices),
        faces=torch.as_tensor(np.asarray(mesh.faces), dtype=torch.long),
        inner=f32(inner),
        outer=f32(outer),
        face=torch.as_tensor(face, dtype=torch.long),
        bary_logits=f32(np.log(np.clip(bary, 1e-4, None))),
        shell_logits=f32(rng.normal(0.0, 0.3, size=count)),
        local_quats=f32(np.tile([1.0, 0.0, 0.0, 0.0], (count, 1))),
        log_scales=f32(log_scales),
        opacity_logits=f32(np.zeros(count)),
        color_logits=f32(np.log(rgb / (1 - rgb))),
    )
