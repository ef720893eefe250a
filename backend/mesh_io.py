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
Limits come before the work they bound: a glTF's JSON is read first and its triangles and vertices
counted over every node instance (one mesh placed many times), its accessor data summed, before
trimesh builds anything; a texture's header gives its format (PNG, JPEG or WebP only: nothing else
is decoded) and pixel count (all textures together within `max_texture_pixels`) before it is decoded.
Uploaded bytes never refer to other files (a glTF's external buffers or images are refused); a glTF
given as a path may refer only to files in its own folder.
"""

from __future__ import annotations

import io
import json
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

import numpy as np

from keydiff3d_addon.rigcore.frames import Y_UP_TO_Z_UP
from keydiff3d_addon.rigcore.ply import MAX_FACES

from .errors import InputError, TooLargeError, UnsupportedFormatError
from .geometry import Placement, fit_to_world
from .geometry.mesh import RenderMesh, vertex_normals

MESH_FORMATS = ("glb", "gltf", "obj", "ply", "stl", "off")
GLTF_FORMATS = ("glb", "gltf")
UP_AXES = ("auto", "Y", "Z")  # a file's up axis; auto = the format's convention (Y for glTF, else Z)
MAX_MESH_FACES = MAX_FACES  # the largest mesh any stage takes; a rig bundle holds no more (rigcore.ply)
MAX_TEXTURE_PIXELS = 4096 * 4096  # all of a mesh's textures together
MAX_GLTF_ACCESSOR_BYTES = 512 * 1024 * 1024  # a glTF's arrays as trimesh builds them
TEXTURE_FORMATS = ("PNG", "JPEG", "WEBP")
_GLTF_COMPONENT_BYTES = {5120: 1, 5121: 1, 5122: 2, 5123: 2, 5125: 4, 5126: 4}
_GLTF_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_NEUTRAL = np.array([0.7, 0.7, 0.7], np.float32)


def mesh_file_type(filename: str | Path) -> str:
    """The file type (one of MESH_FORMATS) from a file name's extension; UnsupportedFormatError otherwise."""
    suffix = Path(filename).suffix.lower().lstrip(".")
    if suffix not in MESH_FORMATS:
        raise UnsupportedFormatError(
            f"mesh files must end in one of .{', .'.join(MESH_FORMATS)}, got {Path(filename).name!r}"
        )
    return suffix


def _known_format(file_type: str) -> str:
    if file_type not in MESH_FORMATS:
        raise UnsupportedFormatError(
            f"{file_type!r} is not a mesh format read here; use one of {', '.join(MESH_FORMATS)}"
        )
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
    max_texture_pixels: int = MAX_TEXTURE_PIXELS,
) -> RenderMesh:
    """Read a mesh file -> a `RenderMesh` in the file's own frame turned z-up (not scaled or centred).

    source: a path, or the file's bytes (an upload: then `file_type` is required; a glTF's external
    buffers are refused and an OBJ's material files are found only beside a path).
    file_type: one of MESH_FORMATS; by default the path's extension.
    up_axis: the file's up axis: "auto" (Y for glTF, Z otherwise), "Y" (turned z-up with
    Y_UP_TO_Z_UP) or "Z" (the file's coordinates kept exactly as stored).
    max_faces: a mesh with more triangles (glTF: counted over all node instances before parsing)
    raises TooLargeError; so do more than 3 x max_faces vertices.
    max_texture_pixels: the pixels of all its textures together; more raises TooLargeError.
    """
    import trimesh

    if isinstance(source, (bytes, bytearray)):
        if file_type is None:
            raise InputError("the mesh's file type is unknown; name the file with its extension")
        file_type = _known_format(file_type)
        name, size, file_obj, folder = f"the {file_type} file", len(source), io.BytesIO(source), None
    else:
        path = Path(source)
        file_type = mesh_file_type(path) if file_type is None else _known_format(file_type)
        if not path.is_file():
            raise InputError(f"mesh file {path} does not exist")
        name, size, file_obj, folder = path.name, path.stat().st_size, str(path), path.parent
    up = file_up_axis(file_type, up_axis)
    if size == 0:
        raise InputError(f"{name} is empty (0 bytes)")
    if file_type in GLTF_FORMATS:
        data = bytes(source) if folder is None else Path(source).read_bytes()
        check_gltf(_gltf_json(data, file_type, name), name, max_faces, folder)
    try:
        loaded = trimesh.load(file_obj, file_type=file_type, process=False)
    except MemoryError:  # out of memory is the machine's state, not a fault of the file
        raise
    except Exception as error:  # trimesh raises anything from ValueError to struct.error on bad files
        raise InputError(f"{name} could not be parsed as {file_type} ({type(error).__name__}: {error})") from None
    mesh = trimesh_to_render_mesh(loaded, name, max_texture_pixels)
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


def _gltf_json(data: bytes, file_type: str, name: str) -> dict:
    """The JSON document of a .gltf file or of a .glb file's first chunk; InputError otherwise."""
    try:
        if file_type == "glb":
            if len(data) < 20 or data[:4] != b"glTF":
                raise ValueError("no glTF binary header")
            length, kind = np.frombuffer(data, "<u4", 2, 12)
            if kind != 0x4E4F534A or 20 + int(length) > len(data):
                raise ValueError("the first chunk is not a complete JSON chunk")
            data = data[20 : 20 + int(length)]
        header = json.loads(data)
    except (ValueError, RecursionError) as error:  # JSON and UTF-8 errors are ValueErrors
        raise InputError(f"{name} could not be parsed as {file_type} ({type(error).__name__}: {error})") from None
    if not isinstance(header, dict):
        raise InputError(f"{name} could not be parsed as {file_type} (its JSON is not an object)")
    return header


def check_gltf(header: dict, name: str, max_faces: int = MAX_MESH_FACES, folder: Path | None = None) -> None:
    """The checks of a glTF document that come before trimesh builds anything: external files (none
    for uploads, `folder` None; else only inside `folder`), the accessor data trimesh would build
    (MAX_GLTF_ACCESSOR_BYTES), and the triangles and vertices of every mesh instance in the scene
    trimesh flattens (a node per instance; the nodes must form trees), against `max_faces` and
    3 x `max_faces`."""

    def items(key: str) -> list:
        value = header.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise InputError(f"{name} is not a valid glTF ({key!r} must be a list of objects)")
        return value

    def index(value, into: list, what: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < len(into):
            raise InputError(f"{name} is not a valid glTF (a {what} index {value!r:.20} does not exist)")
        return value

    for item in items("buffers") + items("images"):
        _check_gltf_uri(item.get("uri"), name, folder)
    accessors, meshes, nodes, scenes = items("accessors"), items("meshes"), items("nodes"), items("scenes")
    counts, total_bytes = [], 0
    for accessor in accessors:
        count, kind, component = accessor.get("count"), accessor.get("type"), accessor.get("componentType")
        known_kind = isinstance(kind, str) and kind in _GLTF_COMPONENTS
        known_component = isinstance(component, int) and component in _GLTF_COMPONENT_BYTES
        if not isinstance(count, int) or count < 0 or not known_kind or not known_component:
            raise InputError(f"{name} is not a valid glTF (an accessor has no valid count, type and componentType)")
        counts.append(count)
        total_bytes += count * _GLTF_COMPONENTS[kind] * _GLTF_COMPONENT_BYTES[component]
    if total_bytes > MAX_GLTF_ACCESSOR_BYTES:
        raise TooLargeError(f"{name} declares {total_bytes} bytes of mesh data; the limit is {MAX_GLTF_ACCESSOR_BYTES}")
    per_mesh = []  # (triangles, vertices) of one instance of each mesh
    for mesh in meshes:
        triangles = vertices = 0
        primitives = mesh.get("primitives", [])
        for primitive in primitives if isinstance(primitives, list) else [None]:
            if not isinstance(primitive, dict) or not isinstance(primitive.get("attributes"), dict):
                raise InputError(f"{name} is not a valid glTF (a mesh primitive has no attributes)")
            n_vertices = counts[index(primitive["attributes"].get("POSITION"), accessors, "POSITION accessor")]
            n_corners = n_vertices
            if "indices" in primitive:
                n_corners = counts[index(primitive["indices"], accessors, "indices accessor")]
            mode = primitive.get("mode", 4)
            triangles += n_corners // 3 if mode == 4 else max(n_corners - 2, 0) if mode in (5, 6) else 0
            vertices += n_vertices
        per_mesh.append((triangles, vertices))
    scene = index(header.get("scene", 0), scenes, "scene") if scenes else None
    roots = scenes[scene].get("nodes", []) if scene is not None else []
    pending = list(roots) if isinstance(roots, list) else [None]
    visited: set[int] = set()
    triangles = vertices = instances = 0
    while pending:  # glTF nodes form trees: a node reached twice has two parents or is in a cycle
        node = index(pending.pop(), nodes, "node")
        if node in visited:
            raise InputError(f"{name} is not a valid glTF (node {node} has two parents or is in a cycle)")
        visited.add(node)
        children = nodes[node].get("children", [])
        pending.extend(children if isinstance(children, list) else [None])
        if "mesh" in nodes[node]:
            mesh_triangles, mesh_vertices = per_mesh[index(nodes[node]["mesh"], meshes, "mesh")]
            triangles, vertices, instances = triangles + mesh_triangles, vertices + mesh_vertices, instances + 1
    if triangles > max_faces or vertices > 3 * max_faces:
        raise TooLargeError(
            f"{name} has {triangles} triangles and {vertices} vertices in its {instances} mesh instances; "
            f"the limit is {max_faces} triangles ({3 * max_faces} vertices), decimate it or instance it less"
        )


def _check_gltf_uri(uri, name: str, folder: Path | None) -> None:
    """An embedded (data:) URI, or for a file on disk a relative name inside its folder."""
    if uri is None or (isinstance(uri, str) and uri.startswith("data:")):
        return
    if folder is None:
        raise InputError(f"{name} refers to the external file {uri!r:.80}; an uploaded glTF must embed its data")
    relative = PurePosixPath(unquote(uri)) if isinstance(uri, str) else None
    if relative is None or relative.is_absolute() or ".." in relative.parts or ":" in uri or "\\" in uri:
        raise InputError(f"{name} refers to {uri!r:.80}; a glTF may only refer to files in its own folder")


def trimesh_to_render_mesh(loaded, name: str = "the mesh", max_texture_pixels: int = MAX_TEXTURE_PIXELS) -> RenderMesh:
    """A `RenderMesh` from a trimesh.Trimesh or trimesh.Scene, in its coordinates as they are
    (scene transforms applied, textures kept: each image decoded once, all within `max_texture_pixels`)."""
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
    for geom, _ in geometries:  # trimesh loads with process=False: nothing has checked the arrays
        points, corners = np.asarray(geom.vertices), np.asarray(geom.faces)
        if points.ndim != 2 or points.shape[1] != 3 or corners.ndim != 2 or corners.shape[1] != 3:
            raise InputError(f"{name} has vertices or faces that are not 3-D points and triangles")
        if corners.min() < 0 or corners.max() >= len(points):
            raise InputError(f"{name} has faces that index vertices that do not exist")

    verts, faces, colors, uvs, face_tex = [], [], [], [], []
    decoder = _TextureDecoder(name, max_texture_pixels)
    has_own_colors = False
    offset = 0
    for geom, transform in geometries:
        v = trimesh.transform_points(np.asarray(geom.vertices, np.float64), transform)
        color, uv, texture = _appearance(geom, decoder)
        has_own_colors |= color is not None
        face_tex.append(np.full(len(geom.faces), -1 if texture is None else texture, np.int32))
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
        uv=np.concatenate(uvs).astype(np.float32) if decoder.textures else None,
        textures=decoder.textures,
        face_texture=np.concatenate(face_tex),
        has_own_colors=has_own_colors,
    )


class _TextureDecoder:
    """Decodes a mesh's texture images once each, in the accepted formats and within one pixel budget
    for all of them; `textures` holds the decoded (h, w, 3) float32 arrays in [0, 1]."""

    def __init__(self, name: str, max_pixels: int) -> None:
        self.name, self.max_pixels, self.pixels = name, max_pixels, 0
        self.textures: list[np.ndarray] = []
        self._index: dict[int, int] = {}  # id(PIL image) -> index in textures

    def index(self, image) -> int:
        """The index in `textures` of a PIL image opened (not decoded) by trimesh."""
        if id(image) in self._index:
            return self._index[id(image)]
        if image.format not in TEXTURE_FORMATS:
            kind = image.format or "an unknown"
            raise UnsupportedFormatError(f"{self.name} has a texture in {kind} format; use PNG, JPEG or WebP")
        width, height = image.size
        self.pixels += width * height
        if self.pixels > self.max_pixels:
            raise TooLargeError(
                f"{self.name}'s textures have {self.pixels} pixels (this one {width}x{height}); "
                f"the limit is {self.max_pixels}, shrink them first"
            )
        try:
            texture = np.asarray(image.convert("RGB"), np.float32) / 255.0
        except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, ... on a damaged image
            problem = f"{self.name}'s {image.format} texture could not be decoded (truncated or corrupt: {error})"
            raise InputError(problem) from None
        self.textures.append(texture)
        self._index[id(image)] = len(self.textures) - 1
        return len(self.textures) - 1


def _appearance(geom, decoder: _TextureDecoder) -> tuple[np.ndarray | None, np.ndarray | None, int | None]:
    """(per-vertex colour (N, 3), or None when the geometry has no colours of its own; uv (N, 2) or
    None; the index of its texture in `decoder.textures` or None) of one geometry."""
    n = len(geom.vertices)
    visual = geom.visual
    kind = getattr(visual, "kind", None)
    material = getattr(visual, "material", None)
    if kind == "texture" and material is not None:
        image, factor = _material_image_and_factor(material)
        colors = np.broadcast_to(factor, (n, 3)).copy()
        if image is not None and visual.uv is not None and len(visual.uv) == n:
            return colors, np.asarray(visual.uv, np.float32), decoder.index(image)
        return colors, None, None
    if kind in ("vertex", "face"):
        rgba = np.asarray(visual.vertex_colors, np.float32)  # trimesh averages face colours onto vertices
        if rgba.shape == (n, 4):
            return rgba[:, :3] / 255.0, None, None
    return None, None, None


def _material_image_and_factor(material) -> tuple[object | None, np.ndarray]:
    """Base-colour texture as trimesh opened it (a PIL image, not decoded yet; or None) and the
    colour factor (3,) (white when the file's is missing or not three finite numbers)."""
    from PIL import Image

    if hasattr(material, "baseColorFactor"):  # glTF PBR: texture times factor, per the spec
        image, factor = material.baseColorTexture, material.baseColorFactor
    else:  # OBJ/MTL: viewers show map_Kd as is; Kd only colours untextured materials
        image = getattr(material, "image", None)
        factor = getattr(material, "diffuse", None) if image is None else None
    try:
        factor = np.asarray(factor, np.float32).reshape(-1)[:3] / 255.0
    except (TypeError, ValueError):
        factor = None
    if factor is None or factor.shape != (3,) or not np.isfinite(factor).all() or factor.max() <= 0:
        factor = np.ones(3, np.float32)
    return (image if isinstance(image, Image.Image) else None), factor
