"""Reading the user's inputs: the image (checked by decoding, with size limits) and a KP.json of keypoints.

The same function serves the CLI and the HTTP service, so an upload is accepted exactly when the
pipeline can read it. The pixel count is checked from the image header before decoding
(decompression bombs). Meshes are read, with the same kind of checks, by `keydiff3d.mesh_io`.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..errors import InputError, TooLargeError, UnsupportedFormatError

IMAGE_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
MAX_IMAGE_PIXELS = 4096 * 4096
MIN_IMAGE_SIDE = 32


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


def read_keypoints_json(path: Path):
    """KP.json (`{"keypoints": N x 3, "adjacency": N x N}`) -> (keypoints (N, 3), adjacency (N, N))
    float64; InputError in one sentence for anything else."""
    import json

    path = Path(path)
    if not path.is_file():
        raise InputError(f"keypoints file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path.name} is not valid JSON ({error})") from None
    if not isinstance(data, dict) or "keypoints" not in data or "adjacency" not in data:
        raise InputError(f'{path.name} must be an object with "keypoints" (N x 3) and "adjacency" (N x N)')
    try:
        keypoints = np.asarray(data["keypoints"], np.float64)
        adjacency = np.asarray(data["adjacency"], np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{path.name}: keypoints and adjacency must be rectangular arrays of numbers") from None
    if keypoints.ndim != 2 or keypoints.shape[1] != 3:
        raise InputError(f"{path.name}: keypoints must be N x 3, got shape {keypoints.shape}")
    if adjacency.shape != (len(keypoints), len(keypoints)):
        raise InputError(f"{path.name}: adjacency must be {len(keypoints)} x {len(keypoints)}, got shape {adjacency.shape}")
    if not (np.isfinite(keypoints).all() and np.isfinite(adjacency).all()):
        raise InputError(f"{path.name}: keypoints and adjacency must be finite numbers")
    return keypoints, adjacency
