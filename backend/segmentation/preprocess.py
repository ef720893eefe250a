"""SV3D's input preprocessing: the foreground's alpha bounding box centred in a square with a margin,
resized to the model size (Lanczos) and composited on white (as the official sampling script does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import InputError

DEFAULT_MARGIN = 0.15  # fraction of the square's side left free around the object, split on both sides


@dataclass
class SV3DInput:
    """The model input: rgb (S, S, 3) float32 in [0, 1] on white, alpha (S, S) float32 in [0, 1].

    box: the object's alpha box (x0, y0, x1, y1) in the source image's pixels, and crop the square
    (x0, y0, side) cut from the source, so callers can map results back to the original photo.
    """

    rgb: np.ndarray
    alpha: np.ndarray
    box: tuple[int, int, int, int]
    crop: tuple[float, float, float]


def alpha_box(alpha: np.ndarray, threshold: float = 0.5) -> tuple[int, int, int, int]:
    """Bounding box (x0, y0, x1, y1), exclusive ends, of alpha > threshold; InputError if empty."""
    ys, xs = np.nonzero(alpha > threshold)
    if len(xs) == 0:
        raise InputError("the image has no foreground: its alpha channel (or mask) is empty")
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def prepare_sv3d_input(image_rgba: np.ndarray, size: int = 576, margin: float = DEFAULT_MARGIN) -> SV3DInput:
    """image_rgba: (H, W, 4) float in [0, 1] with alpha = foreground -> the centred, white-backed square."""
    if image_rgba.ndim != 3 or image_rgba.shape[2] != 4:
        raise InputError(f"expected an RGBA image (H, W, 4), got shape {image_rgba.shape}")
    if not 0.0 <= margin < 1.0:
        raise InputError(f"margin must be in [0, 1), got {margin}")
    rgba = np.clip(np.asarray(image_rgba, np.float32), 0.0, 1.0)
    x0, y0, x1, y1 = alpha_box(rgba[..., 3])
    side = max(x1 - x0, y1 - y0) / (1.0 - margin)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    left, top = cx - side / 2.0, cy - side / 2.0
    # premultiplied channels resample without dark fringes; transparent padding covers a crop past the border
    premultiplied = np.concatenate([rgba[..., :3] * rgba[..., 3:], rgba[..., 3:]], axis=-1)
    height, width = rgba.shape[:2]
    pad = int(np.ceil(max(0.0, -left, -top, left + side - width, top + side - height))) + 1
    premultiplied = np.pad(premultiplied, ((pad, pad), (pad, pad), (0, 0)))
    channels = [
        np.asarray(
            Image.fromarray(premultiplied[..., c], mode="F").resize(
                (size, size), Image.Resampling.LANCZOS, box=(left + pad, top + pad, left + pad + side, top + pad + side)
            )
        )
        for c in range(4)
    ]
    out = np.clip(np.stack(channels, axis=-1), 0.0, 1.0)
    alpha = out[..., 3]
    rgb = np.clip(out[..., :3] + (1.0 - alpha[..., None]), 0.0, 1.0)  # premultiplied "over" white
    return SV3DInput(rgb.astype(np.float32), alpha.astype(np.float32), (x0, y0, x1, y1), (left, top, side))
