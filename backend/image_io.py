"""The one image loader: PNG / JPEG / WebP from a path or bytes, checked by decoding, with size limits.

The CLI (`keydiff3d rig`), the HTTP service and `keydiff3d cache` read images through `load_image`,
so an upload is accepted exactly when the pipeline can read it. The pixel count is checked from the
image header before decoding (decompression bombs).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .errors import InputError, TooLargeError, UnsupportedFormatError

IMAGE_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
MAX_IMAGE_PIXELS = 4096 * 4096
MIN_IMAGE_SIDE = 32


def load_image(
    source: bytes | str | Path, *, max_pixels: int = MAX_IMAGE_PIXELS, min_side: int = MIN_IMAGE_SIDE
) -> np.ndarray:
    """Decode a PNG / JPEG / WebP image -> (H, W, 4) float32 RGBA in [0, 1] (alpha 1 when absent).

    Raises TooLargeError (more than `max_pixels`, read from the header before decoding),
    UnsupportedFormatError (another format or no image at all) or InputError (missing, corrupt,
    truncated, tiny). Messages about a file start with "cannot read image PATH".
    """
    if isinstance(source, (bytes, bytearray)):
        return _decode(bytes(source), max_pixels, min_side)
    path = Path(source)
    if not path.is_file():
        raise InputError(f"input file {path} does not exist")
    try:
        return _decode(path.read_bytes(), max_pixels, min_side)
    except InputError as error:
        raise type(error)(f"cannot read image {path}: {error}") from None


def _decode(data: bytes, max_pixels: int, min_side: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InputError("the image is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise UnsupportedFormatError(
            f"the data is not a readable image; send one of {', '.join(IMAGE_FORMATS)}"
        ) from None
    except Image.DecompressionBombError:  # PIL's own guard: the header claims an absurd size
        raise TooLargeError(
            f"the image's header claims far more than the limit of {max_pixels} pixels (a decompression bomb?)"
        ) from None
    if image.format not in IMAGE_FORMATS:
        raise UnsupportedFormatError(f"{image.format} images are not accepted; send one of {', '.join(IMAGE_FORMATS)}")
    width, height = image.size
    if width * height > max_pixels:
        raise TooLargeError(
            f"the image is {width}x{height} pixels; the limit is {max_pixels} pixels in all, resize it first"
        )
    if min(width, height) < min_side:
        raise InputError(f"the image is {width}x{height} pixels; at least {min_side}x{min_side} are needed")
    try:
        image.load()
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
    except (OSError, SyntaxError, ValueError) as error:
        raise InputError(f"the {image.format} image could not be decoded (truncated or corrupt: {error})") from None
    return rgba
