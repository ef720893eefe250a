"""Orbit calibration recovers the turning sense and object scale of a generator from silhouettes.

The generator under test is a renderer of the same known mesh whose sense and scale we choose, so the
expected answer is known exactly; with real weights the same call measures SV3D-p (docs/SV3D.md).
"""

from dataclasses import dataclass

import numpy as np
import pytest
import trimesh

from keydiff3d.geometry import orbit_cameras, project_points, sv3d_azimuths_deg
from keydiff3d.geometry.mesh import RenderMesh
from keydiff3d.multiview.base import MultiViewResult
from keydiff3d.multiview.sv3d.calibration import SENSES, calibrate_orbit, input_view_placement
from keydiff3d.segmentation.preprocess import prepare_sv3d_input
from keydiff3d.synthetic.renderer import render_multiview

SIZE, MARGIN = 64, 0.15


def l_shaped_mesh() -> RenderMesh:
    """An object whose silhouettes tell left from right: a long bar with a post at one end."""
    bar = trimesh.creation.box(extents=(0.2, 0.9, 0.25))
    post = trimesh.creation.box(extents=(0.2, 0.2, 0.5))
    post.apply_translation((0.25, 0.35, 0.2))
    mesh = trimesh.util.concatenate([bar, post])
    return RenderMesh.from_arrays(mesh.vertices, mesh.faces)


@dataclass
class OrbitRenderer:
    """A view generator with a known convention: renders `mesh` as SV3D would frame it, turning
    `sense`, size x `factor`."""

    mesh: RenderMesh
    sense: str
    factor: float
    name: str = "orbit renderer"

    def from_image(self, image_rgba, progress=None) -> MultiViewResult:
        input_camera = orbit_cameras(sv3d_azimuths_deg()[-1:], size=SIZE)
        scale, offset = input_view_placement(self.mesh.vertices, input_camera, MARGIN)
        cameras = orbit_cameras(SENSES[self.sense] * sv3d_azimuths_deg(), size=SIZE)
        return render_multiview(self.mesh.transformed(scale * self.factor, offset * self.factor), cameras)


def test_input_view_placement_reproduces_sv3d_preprocessing():
    mesh = l_shaped_mesh()
    camera = orbit_cameras(sv3d_azimuths_deg()[-1:], size=SIZE)
    scale, offset = input_view_placement(mesh.vertices, camera, MARGIN)
    uv, _ = project_points(camera.P[0], mesh.vertices * scale + offset)
    lo, hi = uv.min(0), uv.max(0)
    assert max(hi - lo) == pytest.approx((1 - MARGIN) * SIZE, rel=1e-3)
    assert np.allclose((lo + hi) / 2, SIZE / 2, atol=0.05)
    rendered = render_multiview(mesh.transformed(scale, offset), camera)
    prepared = prepare_sv3d_input(np.concatenate([rendered.images[0], rendered.masks[0][..., None]], -1), SIZE, MARGIN)
    assert ((prepared.alpha > 0.5) == (rendered.masks[0] > 0.5)).mean() > 0.97


@pytest.mark.parametrize("sense,factor", [("counter-clockwise", 1.0), ("clockwise", 1.1)])
def test_calibration_recovers_sense_and_scale(sense, factor):
    mesh = l_shaped_mesh()
    result = calibrate_orbit(OrbitRenderer(mesh, sense, factor), mesh, size=SIZE, margin=MARGIN, scales=(0.9, 1.0, 1.1))
    assert (result.sense, result.scale) == (sense, factor)
    assert result.iou > 0.95
    other = "clockwise" if sense == "counter-clockwise" else "counter-clockwise"
    assert result.table[(other, factor)] < result.iou - 0.05
