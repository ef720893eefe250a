"""The interface every multi-view generator implements (the render generator, SV3D-p).

They return a `MultiViewResult` (defined in geometry/views.py, below the generators, because the
CPU renderer in synthetic/ returns one too). The keypoint model consumes it and nothing else, so
swapping the generator never changes the model.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..geometry.views import MultiViewResult
from ..progress import Progress


class MultiViewGenerator(Protocol):
    """Produces orbit views of an object from an image (SV3D-p) or a mesh (renderer)."""

    name: str

    def from_image(self, image_rgba: np.ndarray, progress: Progress | None = None) -> MultiViewResult:
        """image_rgba: (H, W, 4) float32 in [0, 1], alpha = foreground."""
        ...

    def from_mesh(self, mesh, progress: Progress | None = None) -> MultiViewResult:
        """mesh: a trimesh.Trimesh already placed in the generator's world frame."""
        ...
