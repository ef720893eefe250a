"""The render generator: plays SV3D-p's role for meshes by rendering their true orbit views.

Views come from the synthetic CPU renderer at the SV3D-p orbit cameras (21 views, frame 20 = the
input view at azimuth 0), so everything downstream sees exactly what SV3D would hand over - minus
the features: `features` stays empty and the keypoint model computes its own with its CNN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..geometry import SV3D_NUM_FRAMES, orbit_cameras, sv3d_azimuths_deg
from ..progress import Progress
from .base import MultiViewResult


@dataclass
class RenderGenerator:
    """`MultiViewGenerator` over the synthetic renderer.

    size: rendered views are size x size; num_views: orbit frames (21 = SV3D-p, frame num_views-1
    is the input view); supersample: anti-aliasing factor; inconsistency: per-view jitter that mimics
    a diffusion model's imperfect views (0 = exact); seed: the jitter's draws.
    """

    size: int = 256
    num_views: int = SV3D_NUM_FRAMES
    supersample: int = 1
    inconsistency: float = 0.0
    seed: int = 0
    name: str = "render"

    def from_image(self, image_rgba: np.ndarray, progress: Progress | None = None) -> MultiViewResult:
        raise InputError(
            "the render generator renders meshes and cannot generate views from an image; "
            "use the SV3D generator for images"
        )

    def from_mesh(self, mesh, progress: Progress | None = None) -> MultiViewResult:
        """mesh: trimesh.Trimesh / Scene, synthetic Creature or RenderMesh, already placed in the world frame."""
        from ..synthetic.renderer import RenderOptions, render_multiview

        if self.size < 16 or self.num_views < 1:
            raise InputError("the render generator needs size >= 16 px and at least one view")
        cameras = orbit_cameras(sv3d_azimuths_deg(self.num_views), size=self.size)
        options = RenderOptions(supersample=self.supersample, inconsistency=self.inconsistency, seed=self.seed)
        return render_multiview(mesh, cameras, options=options, progress=progress)
