"""Reading the user's input image or mesh, checked by decoding, with size limits.

The same functions serve the CLI and the HTTP service, so an upload is accepted exactly when the
pipeline can read it. Limits are checked before the expensive part: the pixel count from the image
header before decoding (decompression bombs), the byte size before parsing.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..errors import InputError

IMAGE_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
MESH_FORMATS = ("glb", "gltf", "obj", "ply", "stl")
MAX_IMAGE_PIXELS = 4096 * 4096
MIN_IMAGE_SIDE = 32
MAX_MESH_FACES = 2_000_000


class TooLargeError(InputError):
    """The input exceeds a size limit (bytes, pixels, faces)."""

    code = "too_large"


class UnsupportedFormatError(InputError):
    """The input is not in a format the pipeline reads."""

    code = "unsupported_format"


def _read_bytes(source: bytes | str | Path) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    path = Path(source)
    if not path.is_file():
        raise InputError(f"input file {path} does not exist")
    return path.read_bytes()


def load_image(source: bytes | str | Path, *, max_pixels: int = MAX_IMAGE_PIXELS, min_side: int = MIN_IMAGE_SIDE) -> np.ndarray:
    """Decode a PNG / JPEG / WebP image -> (H, W, 4) float32 RGBA in [0, 1] (alpha 1 when absent).

    Raises TooLargeError (more than `max_pixels`, read from the header before decoding),
    UnsupportedFormatError (another format or no image at all) or InputError (corrupt, truncated, tiny).
    """
    from PIL import Image, UnidentifiedImageError

    data = _read_bytes(source)
    if not data:
        raise InputError("the image is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise UnsupportedFormatError(f"the data is not a readable image; send one of {', '.join(IMAGE_FORMATS)}") from None
    except Image.DecompressionBombError:  # PIL's own guard: the header claims an absurd size
        raise TooLargeError(f"the image's header claims far more than the limit of {max_pixels} pixels (a decompression bomb?)") from None
    if image.format not in IMAGE_FORMATS:
        raise UnsupportedFormatError(f"{image.format} images are not accepted; send one of {', '.join(IMAGE_FORMATS)}")
    width, height = image.size
    if width * height > max_pixels:
        raise TooLargeError(f"the image is {width}x{height} pixels; the limit is {max_pixels} pixels in all, resize it first")
    if min(width, height) < min_side:
        raise InputError(f"the image is {width}x{height} pixels; at least {min_side}x{min_side} are needed")
    try:
        image.load()
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
    except (OSError, SyntaxError, ValueError) as error:
        raise InputError(f"the {image.format} image could not be decoded (truncated or corrupt: {error})") from None
    return rgba


def mesh_file_type(filename: str) -> str:
    """The trimesh file type from a file name's extension; UnsupportedFormatError for anything else."""
    suffix = Path(filename).suffix.lower().lstrip(".")
    if suffix not in MESH_FORMATS:
        raise UnsupportedFormatError(f"mesh files must end in one of .{', .'.join(MESH_FORMATS)}, got {filename!r}")
    return suffix


# glTF's +Y-up frame -> Blender's +Z-up frame, as Blender's glTF importer does: (x, y, z) -> (x, -z, y)
Y_UP_TO_Z_UP = np.array([[1.0, 0, 0, 0], [0, 0, -1.0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0]])


def load_mesh(source: bytes | str | Path, file_type: str | None = None, *, up_axis: str = "auto", max_faces: int = MAX_MESH_FACES):
    """Parse a mesh file -> a `RenderMesh` (scenes flattened with node transforms, textures kept), z up.

    file_type: glb | gltf | obj | ply | stl; taken from the file name when `source` is a path.
    up_axis: the file's up axis; 'auto' = Y for glTF (the format's convention), Z otherwise. The
    returned mesh is z up, i.e. in Blender's frame for a glTF that Blender exported. Vertex order is
    the file's (geometries concatenated in scene order), which the rig bundle keeps.
    """
    import trimesh

    from ..synthetic.mesh_io import trimesh_to_render_mesh

    if file_type is None:
        if isinstance(source, (bytes, bytearray)):
            raise InputError("the mesh's file type is unknown; name the file with its extension")
        file_type = mesh_file_type(str(source))
    data = _read_bytes(source)
    if not data:
        raise InputError("the mesh file is empty (0 bytes)")
    try:
        loaded = trimesh.load(io.BytesIO(data), file_type=file_type, process=False)
    except Exception as error:  # trimesh raises anything from ValueError to struct.error on bad files
        raise InputError(f"the {file_type} mesh could not be parsed ({type(error).__name__}: {error})") from None
    if (up_axis == "auto" and file_type in ("glb", "gltf")) or up_axis == "Y":
        loaded.apply_transform(Y_UP_TO_Z_UP)
    mesh = trimesh_to_render_mesh(loaded, name=f"the {file_type} file")
    if len(mesh.faces) > max_faces:
        raise TooLargeError(f"the mesh has {len(mesh.faces)} triangles; the limit is {max_faces}, decimate it first")
    if float(np.ptp(mesh.vertices, axis=0).max()) <= 0:
        raise InputError("the mesh has zero size")
    return mesh
