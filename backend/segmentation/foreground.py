"""Foreground of an input photo as an RGBA image: from its alpha channel, a user box + SAM, or Grounded SAM.

`method`: "alpha" (use the image's alpha), "box" (SAM prompted with the user's box),
"grounded-sam" (Grounding DINO finds the `prompt`, SAM segments the best box) or "auto"
(alpha when the image has a real alpha channel, Grounded SAM otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..progress import Progress

METHODS = ("auto", "alpha", "box", "grounded-sam")


@dataclass(frozen=True)
class ForegroundOptions:
    method: str = "auto"
    prompt: str = "animal. creature."
    box: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1 in pixels of the input
    box_threshold: float = 0.3
    text_threshold: float = 0.25


def has_alpha(image_rgba: np.ndarray) -> bool:
    """True when the alpha channel separates something: partly transparent and partly opaque."""
    alpha = image_rgba[..., 3]
    return bool((alpha < 0.5).mean() > 0.01 and (alpha > 0.5).any())


def clean_mask(mask: np.ndarray) -> np.ndarray:
    """Keep the largest connected component and fill its holes (SAM's stray specks, eye highlights)."""
    binary = mask > 0.5
    labels, count = ndimage.label(binary)
    if count > 1:
        sizes = ndimage.sum(binary, labels, range(1, count + 1))
        binary = labels == 1 + int(np.argmax(sizes))
    return ndimage.binary_fill_holes(binary).astype(np.float32)


class ForegroundExtractor:
    """Holds the detector and SAM (loaded lazily from `keydiff3d weights` or explicit paths)."""

    def __init__(
        self, sam: str | Path | None = None, grounding_dino: str | Path | None = None, device: str = "cpu"
    ) -> None:
        self._paths = {"sam": sam, "grounding_dino": grounding_dino}
        self._device = device
        self._sam = None
        self._detector = None

    def _segmenter(self):
        if self._sam is None:
            from .. import weights
            from .grounded_sam import SamSegmenter

            self._sam = SamSegmenter(weights.require("sam", self._paths["sam"]), self._device)
        return self._sam

    def _grounding(self):
        if self._detector is None:
            from .. import weights
            from .grounded_sam import GroundingDetector

            self._detector = GroundingDetector(
                weights.require("grounding_dino", self._paths["grounding_dino"]), self._device
            )
        return self._detector

    def validate(self, options: ForegroundOptions) -> None:
        """Check (headers only) the weight files `options` will need, before any long work starts.

        "auto" needs SAM and Grounding DINO only for images without alpha; they are checked on first use.
        """
        from .. import weights

        if options.method not in METHODS:
            raise InputError(f"unknown foreground method {options.method!r}; use one of {', '.join(METHODS)}")
        needed = {"box": ("sam",), "grounded-sam": ("sam", "grounding_dino")}.get(options.method, ())
        for name in needed:
            weights.require(name, self._paths[name])

    def extract(
        self, image_rgba: np.ndarray, options: ForegroundOptions = ForegroundOptions(), progress: Progress | None = None
    ) -> np.ndarray:
        """(H, W, 4) RGBA float in [0, 1] -> the same image with alpha = the foreground mask."""
        progress = progress or Progress()
        method = options.method
        if method == "auto":
            method = "alpha" if has_alpha(image_rgba) else ("box" if options.box is not None else "grounded-sam")
        if method == "alpha":
            if not has_alpha(image_rgba):
                raise InputError("the image has no transparent background; use --foreground grounded-sam or a box")
            return image_rgba
        rgb = (np.clip(image_rgba[..., :3], 0.0, 1.0) * 255).round().astype(np.uint8)
        box = options.box
        if method == "grounded-sam":
            progress.update(0.0, f"detecting '{options.prompt}'", stage="foreground")
            detections = self._grounding().detect(rgb, options.prompt, options.box_threshold, options.text_threshold)
            if not detections:
                raise InputError(
                    f"no '{options.prompt}' found in the image; pass a box (--box x0,y0,x1,y1) or an image with alpha"
                )
            box = detections[0].box
        elif method != "box":
            raise InputError(f"unknown foreground method {method!r}; use one of {', '.join(METHODS)}")
        if box is None:
            raise InputError("the box foreground method needs a box x0,y0,x1,y1")
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise InputError(f"box {box} is not inside the {w}x{h} image")
        progress.update(0.5, "segmenting", stage="foreground")
        mask = clean_mask(self._segmenter().segment(rgb, box))
        if mask.sum() == 0:
            raise InputError("SAM found no object in the box; try a tighter box or another prompt")
        progress.update(1.0, "foreground done", stage="foreground")
        return np.concatenate([image_rgba[..., :3], mask[..., None]], axis=-1).astype(np.float32)

    def refine_view_mask(self, rgb: np.ndarray, rough: np.ndarray) -> np.ndarray:
        """A generated view's mask from SAM prompted with the box of its rough (white-threshold) mask.

        rgb (H, W, 3) float in [0, 1], rough (H, W) in [0, 1] -> (H, W) float32; an empty rough mask stays empty.
        Usable as `SV3DGenerator.view_segmenter`.
        """
        ys, xs = np.nonzero(rough > 0.5)
        if len(xs) == 0:
            return rough.astype(np.float32)
        box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        image = (np.clip(rgb, 0.0, 1.0) * 255).round().astype(np.uint8)
        return clean_mask(self._segmenter().segment(image, box))


def segment_foreground(
    image_rgba: np.ndarray,
    device: str = "auto",
    options: ForegroundOptions = ForegroundOptions(),
    progress: Progress | None = None,
    extractor: ForegroundExtractor | None = None,
) -> np.ndarray:
    """One-call foreground: `extractor` (or a new one using the weights `keydiff3d weights` finds) on `image_rgba`.

    device: "auto" (CUDA when available), "cuda" or "cpu". Pass a kept `extractor` to avoid reloading SAM.
    """
    if extractor is None:
        from ..device import resolve_device

        extractor = ForegroundExtractor(device=str(resolve_device(device)))
    return extractor.extract(image_rgba, options, progress)
