"""Loading meshes from disk (GLB/glTF/OBJ/PLY/STL/OFF via trimesh) into a z-up `RenderMesh`.

A scene is flattened with each geometry's scene-graph transform applied. Per geometry the albedo
is, in order of preference: its base-colour texture (times the material's colour factor), its
vertex colours, its face colours, the material's main colour, or a neutral grey.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..geometry import Placement, fit_to_world
from .renderer import RenderMesh
from .shapes import vertex_normals

_NEUTRAL = np.array([0.7, 0.7, 0.7], np.float32)


GLTF_SUFFIXES = (".glb", ".gltf")
# glTF is y-up by its spec; the project's frames are z-up. Blender's glTF importer maps
# (x, y, z) -> (x, -z, y), and so does this module, so a mesh lands here as it does in Blender.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def default_up_axis(path: str | Path) -> str:
    """'Y' for glTF files (their spec), else 'Z'."""
    return "Y" if Path(path).suffix.lower() in GLTF_SUFFIXES else "Z"


def load_mesh(path: str | Path, up_axis: str | None = None) -> RenderMesh:
    """Load a mesh file into the z-up frame, unscaled and uncentred (the file's own frame, z up).

    up_axis: the file's up axis, 'Z' or 'Y' (default: `default_up_axis(path)`); a y-up mesh is
    turned z-up. Raises InputError with one sentence on any failure.
    """
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise InputError(f"mesh file not found: {path}")
    up = (up_axis or default_up_axis(path)).upper()
    if up not in ("Y", "Z"):
        raise InputError(f"up axis must be Y or Z, not {up_axis!r}")
    try:
        loaded = trimesh.load(str(path), process=False)
    except Exception as error:  # trimesh raises many types for unreadable files
        raise InputError(f"could not read the mesh {path.name}: {error}") from error
    mesh = trimesh_to_render_mesh(loaded, name=path.name)
    if up == "Y":
        mesh.vertices = (mesh.vertices @ Y_UP_TO_Z_UP.T).astype(np.float32)
        mesh.normals = (mesh.normals @ Y_UP_TO_Z_UP.T).astype(np.float32)
    return mesh


def load_placed_mesh(path: str | Path, up_axis: str | None = None) -> tuple[RenderMesh, Placement]:
    """Load a mesh (z up) and place it in the world frame with `fit_to_world`; returns the placement too.

    The placement maps the z-up frame of `load_mesh` to the world (for a y-up file, apply
    Y_UP_TO_Z_UP first to go from the file's coordinates to that frame).
    """
    mesh = load_mesh(path, up_axis)
    placement = fit_to_world(mesh.vertices)
    return mesh.transformed(placement.scale, -placement.center * placement.scale), placement


def trimesh_to_render_mesh(loaded, name: str = "mesh") -> RenderMesh:
    """A `RenderMesh` from a trimesh.Trimesh or trimesh.Scene (transforms applied, textures kept)."""
    import trimesh

    if isinstance(loaded, trimesh.Scene):
        geometries = []
        for node in loaded.graph.nodes_geometry:
            transform, geom_name = loaded.graph[node]
            geom = loaded.geometry[geom_name]
            if isinstance(geom, trimesh.Trimesh):
                geometries.append((geom, transform))
    elif isinstance(loaded, trimesh.Trimesh):
        geometries = [(loaded, np.eye(4))]
    else:
        geometries = []
    geometries = [(g, T) for g, T in geometries if len(g.faces) > 0]
    if not geometries:
        raise InputError(f"{name} contains no triangle mesh")

    verts, faces, colors, uvs, face_tex, textures = [], [], [], [], [], []
    offset = 0
    for geom, transform in geometries:
        v = trimesh.transform_points(np.asarray(geom.vertices, np.float64), transform)
        color, uv, texture = _appearance(geom)
        if texture is not None:
            textures.append(texture)
            face_tex.append(np.full(len(geom.faces), len(textures) - 1, np.int32))
        else:
            face_tex.append(np.full(len(geom.faces), -1, np.int32))
        verts.append(v)
        faces.append(np.asarray(geom.faces, np.int64) + offset)
        colors.append(color)
        uvs.append(uv if uv is not None else np.zeros((len(v), 2), np.float32))
        offset += len(v)
    vertices = np.concatenate(verts).astype(np.float32)
    if not np.isfinite(vertices).all():
        raise InputError(f"{name} has vertices with NaN or infinite coordinates")
    all_faces = np.concatenate(faces).astype(np.int32)
    return RenderMesh(
        vertices=vertices,
        faces=all_faces,
        normals=vertex_normals(vertices, all_faces),
        colors=np.concatenate(colors).astype(np.float32),
        uv=np.concatenate(uvs).astype(np.float32) if textures else None,
        textures=textures,
        face_texture=np.concatenate(face_tex),
    )


def _appearance(geom) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(per-vertex colour (N, 3), uv (N, 2) or None, texture (h, w, 3) or None) of one geometry."""
    n = len(geom.vertices)
    visual = geom.visual
    kind = getattr(visual, "kind", None)
    if kind == "texture":
        material = getattr(visual, "material", None)
        image, factor = _material_image_and_factor(material)
        if image is not None and visual.uv is not None and len(visual.uv) == n:
            return np.broadcast_to(factor, (n, 3)).copy(), np.asarray(visual.uv, np.float32), image
        return np.broadcast_to(factor, (n, 3)).copy(), None, None
    if kind in ("vertex", "face"):
        rgba = np.asarray(visual.vertex_colors, np.float32)  # trimesh averages face colours onto vertices
        if rgba.shape == (n, 4):
            return rgba[:, :3] / 255.0, None, None
    return np.broadcast_to(_NEUTRAL, (n, 3)).copy(), None, None


def _material_image_and_factor(material) -> tuple[np.ndarray | None, np.ndarray]:
    """Base-colour texture (h, w, 3) float32 in [0, 1] (or None) and the colour factor (3,)."""
    if material is None:
        return None, _NEUTRAL
    if hasattr(material, "baseColorFactor"):  # glTF PBR: texture times factor, per the spec
        image, factor = material.baseColorTexture, material.baseColorFactor
    else:  # OBJ/MTL: viewers show map_Kd as is; Kd only colours untextured materials
        image = getattr(material, "image", None)
        factor = getattr(material, "diffuse", None) if image is None else None
    factor = np.asarray(factor, np.float32)[:3] / 255.0 if factor is not None else np.ones(3, np.float32)
    if factor.max() <= 0:
        factor = np.ones(3, np.float32)
    if image is None:
        return None, factor
    texture = np.asarray(image.convert("RGB"), np.float32) / 255.0
    return texture, factor
