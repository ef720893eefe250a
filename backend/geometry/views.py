"""`MultiViewResult`: orbit views of one object with their masks, cameras and features, the contract
between the multi-view generators (the CPU renderer, the render generator, SV3D-p) and the keypoint
model. It lives here, below both, so the renderer (synthetic/) and the generators (multiview/) share
it without importing each other; `keydiff3d.multiview` exports it with the generator interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .cameras import Cameras


@dataclass
class MultiViewResult:
    """Orbit views of one object in the generator's world frame (z up, object at the origin).

    images:   (V, H, W, 3) float32 in [0, 1], composited on white.
    masks:    (V, H, W) float32 in [0, 1], foreground probability.
    cameras:  V cameras for images of size W x H (see geometry.cameras for conventions).
    input_view: index of the view that shows the input image (SV3D-p: 20).
    features: per tapped layer, (V, C_l, h_l, w_l) arrays (fp16 or fp32), or empty when the model
              computes its own features from `images` (render generator + trainable CNN).
    feature_names: one name per entry of `features` (e.g. "up_blocks.1.resnets.2").
    depth:    optional (V, H, W) float32 camera-space depth, 0 where there is no surface (renders only).
    """

    images: np.ndarray
    masks: np.ndarray
    cameras: Cameras
    input_view: int
    features: list[np.ndarray] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)
    depth: np.ndarray | None = None

    def __post_init__(self) -> None:
        V, H, W, _ = self.images.shape
        if self.masks.shape != (V, H, W):
            raise ValueError(f"masks {self.masks.shape} do not match images {self.images.shape}")
        if len(self.cameras) != V or (self.cameras.width, self.cameras.height) != (W, H):
            raise ValueError("cameras do not match the views")
        if len(self.features) != len(self.feature_names):
            raise ValueError("one feature name per feature layer is required")
        if not 0 <= self.input_view < V:
            raise ValueError(f"input_view {self.input_view} outside 0..{V - 1}")

    @property
    def num_views(self) -> int:
        return self.images.shape[0]
