"""The triangle mesh every stage passes around (`RenderMesh`: renderer, mesh loader, pipeline) and its
vertex normals. Frames: a mesh is z up, in the world frame or in its file's own frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import InputError


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3) float32. A vertex in no face (or only in zero-area faces)
    gets +Y, so every normal is a unit vector (glTF requires it)."""
    vertices, faces = np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
    normals = np.zeros_like(vertices)
    if len(faces):
        tri = vertices[faces]
        face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        for corner in range(3):
            for axis in range(3):
                normals[:, axis] += np.bincount(faces[:, corner], face_n[:, axis], len(vertices))
    norm = np.linalg.norm(normals, axis=1, keepdims=True)
    out = np.where(norm > 0, normals / np.maximum(norm, 1e-30), np.array([0.0, 1.0, 0.0]))
    return out.astype(np.float32)


@dataclass
class RenderMesh:
    """A triangle mesh, z up: in the world frame to render it, or in a mesh file's own frame as
    `keydiff3d.mesh_io.load_mesh` returns it (then placed with `transformed`).

    vertices (N, 3) float32; faces (F, 3) int32; normals (N, 3) float32 unit vertex normals;
    colors (N, 3) float32 in [0, 1] albedo per vertex (on textured faces: the texture's colour factor);
    uv (N, 2) float32 texture coordinates (OpenGL convention: v up, origin bottom-left) or None;
    textures: list of (h, w, 3) float32 albedo images; face_texture (F,) int32 index into
    `textures`, -1 = use the vertex colours; has_own_colors: False when the source had no colours
    (no texture, vertex, face or material colour) and `colors` is the neutral grey.
    """

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    colors: np.ndarray
    uv: np.ndarray | None = None
    textures: list[np.ndarray] = field(default_factory=list)
    face_texture: np.ndarray | None = None
    closed: bool = False  # closed and outward-wound: back faces are culled (half the raster work)
    has_own_colors: bool = True

    def __post_init__(self) -> None:
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3 or len(self.vertices) == 0:
            raise InputError("the mesh has no vertices")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3 or len(self.faces) == 0:
            raise InputError("the mesh has no triangles")
        if self.faces.min() < 0 or self.faces.max() >= len(self.vertices):
            raise InputError("the mesh's faces index vertices that do not exist")
        if self.face_texture is None:
            self.face_texture = np.full(len(self.faces), -1, np.int32)

    @classmethod
    def from_arrays(
        cls, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray | None = None, closed: bool = False
    ) -> "RenderMesh":
        vertices = np.asarray(vertices, np.float32)
        faces = np.asarray(faces, np.int32)
        has_own_colors = colors is not None
        colors = (
            np.full((len(vertices), 3), 0.7, np.float32) if colors is None else np.asarray(colors, np.float32)[:, :3]
        )
        mesh = cls(
            vertices, faces, np.zeros_like(vertices), colors, closed=closed, has_own_colors=has_own_colors
        )  # validates first
        mesh.normals = vertex_normals(vertices, faces)
        return mesh

    def transformed(self, scale: float, offset: np.ndarray) -> "RenderMesh":
        """The mesh under x -> scale * x + offset (normals are unchanged by a uniform scale)."""
        return replace(self, vertices=(self.vertices * scale + offset).astype(np.float32))

    def rotated(self, rotation: np.ndarray) -> "RenderMesh":
        """The mesh under x -> rotation @ x (a (3, 3) rotation, e.g. rigcore.frames.Y_UP_TO_Z_UP);
        normals turn alike."""
        return replace(
            self,
            vertices=(self.vertices @ rotation.T).astype(np.float32),
            normals=(self.normals @ rotation.T).astype(np.float32),
        )

    def vertex_colors_rgba8(self) -> np.ndarray | None:
        """(N, 4) uint8 sRGB vertex colours for a rig bundle: the albedo at each vertex (on a textured
        vertex the texel nearest its uv, uv 0 and 1 at the first and last texel centres as trimesh's
        uv_to_color, times the colour factor), alpha 255; None when the mesh has no colours of its own."""
        if not self.has_own_colors:
            return None
        albedo = self.colors.copy()
        textured = self.face_texture >= 0
        if textured.any():
            vertex_texture = np.full(len(self.vertices), -1, np.int64)
            vertex_texture[self.faces[textured]] = self.face_texture[textured, None]
            for index, texture in enumerate(self.textures):
                on = vertex_texture == index
                h, w = texture.shape[:2]
                col = np.round(self.uv[on, 0] * (w - 1)).astype(np.int64) % w
                row = np.round((1.0 - self.uv[on, 1]) * (h - 1)).astype(np.int64) % h
                albedo[on] *= texture[row, col]
        rgb = np.clip(albedo * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)
