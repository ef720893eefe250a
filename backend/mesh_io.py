"""The one mesh loader of every stage: a mesh file (GLB/glTF/OBJ/PLY/STL/OFF, read with trimesh), as
a path or as an upload's bytes, -> a `RenderMesh`. `keydiff3d render`, `keydiff3d rig-mesh`, the
pipeline's mesh path, the service's uploads and the demo all read meshes here.

Frames. The project's frames are z-up (the world frame, docs/DEVELOPING.md, and a mesh's own frame
as returned here: the file's coordinates turned z-up, not scaled or centred). glTF is y-up by its
spec: with up_axis "auto" a glTF file is turned z-up with Y_UP_TO_Z_UP, (x, y, z) -> (x, -z, y), as
Blender's glTF importer does, so a mesh lands here as it does in Blender; the other formats have no
convention and are taken as z-up. up_axis "Z" keeps any file's coordinates exactly as stored.

Appearance. A scene is flattened with each geometry's scene-graph transform applied, geometries in
scene order (the vertex order a rig bundle keeps). Per geometry the albedo is, in order of
preference: its base-colour texture (times the material's colour factor), its vertex colours, its
face colours, the material's main colour, or a neutral grey (`RenderMesh.has_own_colors` is False
when no geometry has colours of its own).

Checks. A path and uploaded bytes are checked alike: the format from the file name
(UnsupportedFormatError) and a missing or empty file before parsing, then a parse failure, no
triangles, NaN coordinates, zero size (InputError) and the face limit (TooLargeError), each one
sentence (the service answers TooLargeError with 413 and UnsupportedFormatError with 415).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .errors import InputError, TooLargeError, UnsupportedFormatError
from .geometry import Placement, fit_to_world
from .synthetic.renderer import RenderMesh
from .synthetic.shapes import vertex_normals

MESH_FORMATS = ("glb", "gltf", "obj", "ply", "stl", "off")
GLTF_FORMATS = ("glb", "gltf")
UP_AXES = ("auto", "Y", "Z")  # a file's up axis; auto = the format's convention (Y for glTF, else Z)
MAX_MESH_FACES = 2_000_000
# glTF's y-up frame -> the project's z-up frame, as Blender's glTF importer: (x, y, z) -> (x, -z, y).
# A rotation: its transpose turns z-up coordinates into glTF's frame.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
_NEUTRAL = np.array([0.7, 0.7, 0.7], np.float32)


def mesh_file_type(filename: str | Path) -> str:
    """The file type (one of MESH_FORMATS) from a file name's extension; UnsupportedFormatError otherwise."""
    suffix = Path(filename).suffix.lower().lstrip(".")
    if suffix not in MESH_FORMATS:
        raise UnsupportedFormatError(f"mesh files must end in one of .{', .'.join(MESH_FORMATS)}, got {Path(filename).name!r}")
    return suffix


def _known_format(file_type: str) -> str:
    if file_type not in MESH_FORMATS:
        raise UnsupportedFormatError(f"{file_type!r} is not a mesh format read here; use one of {', '.join(MESH_FORMATS)}")
    return file_type


def file_up_axis(file_type: str, up_axis: str = "auto") -> str:
    """The up axis of a file's own coordinates, "Y" or "Z": `up_axis` itself, or for "auto" the
    format's convention (Y for glTF, by its spec; Z for the formats without one)."""
    if up_axis not in UP_AXES:
        raise InputError(f"the up axis must be one of {', '.join(UP_AXES)}, got {up_axis!r}")
    if up_axis == "auto":
        return "Y" if file_type in GLTF_FORMATS else "Z"
    return up_axis


def load_mesh(
    source: bytes | str | Path,
    file_type: str | None = None,
    *,
    up_axis: str = "auto",
    max_faces: int = MAX_MESH_FACES,
) -> RenderMesh:
    """Read a mesh file -> a `RenderMesh` in the file's own frame turned z-up (not scaled or centred).

    source: a path, or the file's bytes (an upload: then `file_type` is required; a glTF's external
    buffers and an OBJ's material files are found only beside a path).
    file_type: one of MESH_FORMATS; by default the path's extension.
    up_axis: the file's up axis: "auto" (Y for glTF, Z otherwise), "Y" (turned z-up with
    Y_UP_TO_Z_UP) or "Z" (the file's coordinates kept exactly as stored).
    max_faces: a mesh with more triangles raises TooLargeError.
    """
    import trimesh

    if isinstance(source, (bytes, bytearray)):
        if file_type is None:
            raise InputError("the mesh's file type is unknown; name the file with its extension")
        file_type = _known_format(file_type)
        name, size, file_obj = f"the {file_type} file", len(source), io.BytesIO(source)
    else:
        path = Path(source)
        file_type = mesh_file_type(path) if file_type is None else _known_format(file_type)
        if not path.is_file():
            raise InputError(f"mesh file {path} does not exist")
        name, size, file_obj = path.name, path.stat().st_size, str(path)
    up = file_up_axis(file_type, up_axis)
    if size == 0:
        raise InputError(f"{name} is empty (0 bytes)")
    try:
        loaded = trimesh.load(file_obj, file_type=file_type, process=False)
    except Exception as error:  # trimesh raises anything from ValueError to struct.error on bad files
        raise InputError(f"{name} could not be parsed as {file_type} ({type(error).__name__}: {error})") from None
    mesh = trimesh_to_render_mesh(loaded, name)
    if len(mesh.faces) > max_faces:
        raise TooLargeError(f"{name} has {len(mesh.faces)} triangles; the limit is {max_faces}, decimate it first")
    if float(np.ptp(mesh.vertices, axis=0).max()) <= 0:
        raise InputError(f"{name} has zero size")
    return mesh.rotated(Y_UP_TO_Z_UP) if up == "Y" else mesh


def load_placed_mesh(
    source: bytes | str | Path,
    file_type: str | None = None,
    *,
    up_axis: str = "auto",
    max_faces: int = MAX_MESH_FACES,
) -> tuple[RenderMesh, Placement]:
    """`load_mesh`, then placed in the world frame by `fit_to_world`; returns the placement too.

    The placement maps the z-up frame of `load_mesh` to the world (for a y-up file, apply
    Y_UP_TO_Z_UP first to go from the file's coordinates to that frame).
    """
    mesh = load_mesh(source, file_type, up_axis=up_axis, max_faces=max_faces)
    placement = fit_to_world(mesh.vertices)
    return mesh.transformed(placement.scale, -placement.center * placement.scale), placement


def to_gltf_frame(geometry):
    """A copy of a z-up trimesh Trimesh or Scene turned into glTF's y-up frame, (x, y, z) -> (x, z, -y)
    (the inverse of Y_UP_TO_Z_UP), to export as a proper glTF that `load_mesh` reads back z-up."""
    transform = np.eye(4)
    transform[:3, :3] = Y_UP_TO_Z_UP.T
    turned = geometry.copy()
    turned.apply_transform(transform)
    return turned


def trimesh_to_render_mesh(loaded, name: str = "the mesh") -> RenderMesh:
    """A `RenderMesh` from a trimesh.Trimesh or trimesh.Scene, in its coordinates as they are
    (scene transforms applied, textures kept)."""
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
        raise InputError(f"{name} holds no triangles")

    verts, faces, colors, uvs, face_tex, textures = [], [], [], [], [], []
    has_own_colors = False
    offset = 0
    for geom, transform in geometries:
        v = trimesh.transform_points(np.asarray(geom.vertices, np.float64), transform)
        color, uv, texture = _appearance(geom)
        has_own_colors |= color is not None
        if texture is not None:
            textures.append(texture)
            face_tex.append(np.full(len(geom.faces), len(textures) - 1, np.int32))
        else:
            face_tex.append(np.full(len(geom.faces), -1, np.int32))
        verts.append(v)
        faces.append(np.asarray(geom.faces, np.int64) + offset)
        colors.append(color if color is not None else np.broadcast_to(_NEUTRAL, (len(v), 3)))
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
        has_own_colors=has_own_colors,
    )


def _appearance(geom) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """(per-vertex colour (N, 3), or None when the geometry has no colours of its own; uv (N, 2) or
    None; texture (h, w, 3) or None) of one geometry."""
    n = len(geom.vertices)
    visual = geom.visual
    kind = getattr(visual, "kind", None)
    material = getattr(visual, "material", None)
    if kind == "texture" and material is not None:
        image, factor = _material_image_and_factor(material)
        colors = np.broadcast_to(factor, (n, 3)).copy()
        if image is not None and visual.uv is not None and len(visual.uv) == n:
            return colors, np.asarray(visual.uv, np.float32), image
        return colors, None, None
    if kind in ("vertex", "face"):
        rgba = np.asarray(visual.vertex_colors, np.float32)  # trimesh averages face colours onto vertices
        if rgba.shape == (n, 4):
            return rgba[:, :3] / 255.0, None, None
    return None, None, None


def _material_image_and_factor(material) -> tuple[np.ndarray | None, np.ndarray]:
    """Base-colour texture (h, w, 3) float32 in [0, 1] (or None) and the colour factor (3,)."""
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
