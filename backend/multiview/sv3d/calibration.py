"""Measuring SV3D-p's orbit sense and object scale against renders of a mesh of known geometry.

The world frame (geometry.cameras) assumes frame i shows the object from azimuth (i+1)*360/21 deg,
turning counter-clockwise seen from +z, with the object as large as the preprocessed input view
implies. Whether real SV3D-p output agrees can only be measured on real output:

1. render a known mesh's input view (frame 20) and give it to the generator;
2. place the mesh so that its frame-20 projection is exactly SV3D's preprocessed input (bbox
   centred, longest side (1 - margin) of the image) - `input_view_placement`;
3. render frames 0..19 of that placement for both turning senses and a few scale factors about the
   orbit centre, and score each hypothesis by the mean silhouette IoU with the generated masks.

`calibrate_orbit(generator, mesh)` returns the best hypothesis and the whole table; with the real
weights, a few synthetic creatures settle the convention (docs/SV3D.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...geometry import Cameras, orbit_cameras, project_points, sv3d_azimuths_deg
from ...progress import Progress
from ..base import MultiViewGenerator

SENSES = {"counter-clockwise": 1.0, "clockwise": -1.0}


@dataclass
class OrbitCalibration:
    sense: str  # "counter-clockwise" (as geometry.orbit_cameras) or "clockwise"
    scale: float  # generated object size / the size the input view implies (1 = consistent)
    iou: float  # mean silhouette IoU over the generated frames at the best hypothesis
    table: dict[tuple[str, float], float]  # (sense, scale) -> mean IoU


def input_view_placement(
    vertices: np.ndarray, camera: Cameras, margin: float, iterations: int = 8
) -> tuple[float, np.ndarray]:
    """(scale, offset) with x -> scale * x + offset making the mesh's projection in `camera` (one view)
    look like SV3D's preprocessed input: bounding box centred, longest side (1 - margin) * size."""
    P = camera.P[0]
    target = (1.0 - margin) * camera.width
    focal = camera.K[0, 0, 0]
    right, down = camera.R[0, 0], camera.R[0, 1]  # camera x / y axes in world coordinates
    scale, offset = 1.0, np.zeros(3)
    for _ in range(iterations):
        uv, depth = project_points(P, vertices * scale + offset)
        lo, hi = uv.min(axis=0), uv.max(axis=0)
        scale *= target / max(hi - lo)
        error = (lo + hi) / 2.0 - np.array([camera.width, camera.height]) / 2.0
        offset -= (error[0] * right + error[1] * down) * float(np.median(depth)) / focal
    return scale, offset


def silhouette_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-view IoU of (V, H, W) masks thresholded at 0.5."""
    a, b = a > 0.5, b > 0.5
    union = (a | b).sum(axis=(1, 2))
    return np.where(union > 0, (a & b).sum(axis=(1, 2)) / np.maximum(union, 1), 1.0)


def calibrate_orbit(
    generator: MultiViewGenerator,
    mesh,
    *,
    size: int,
    margin: float,
    scales: Sequence[float] = (0.8, 0.9, 1.0, 1.1, 1.25),
    elevation_deg: float = 10.0,
    progress: Progress | None = None,
) -> OrbitCalibration:
    """Score (sense, scale) hypotheses of `generator`'s orbit against renders of `mesh` (see module docstring).

    mesh: anything `synthetic.renderer.as_render_mesh` accepts, in the world frame; size and margin:
    the generator's view size and preprocessing margin (SV3DConfig.size / .margin).
    """
    from ...synthetic.renderer import as_render_mesh, render_multiview

    progress = progress or Progress()
    rmesh = as_render_mesh(mesh)
    azimuths = sv3d_azimuths_deg()
    input_camera = orbit_cameras(azimuths[-1:], elevation_deg, size=size)
    shown = render_multiview(rmesh, input_camera)
    rgba = np.concatenate([shown.images[0], shown.masks[0][..., None]], axis=-1)
    generated = generator.from_image(rgba, progress.span(0.0, 0.5, "calibration"))
    scale, offset = input_view_placement(rmesh.vertices, input_camera, margin)
    table: dict[tuple[str, float], float] = {}
    hypotheses = [(sense, factor) for sense in SENSES for factor in scales]
    for sense, factor in progress.span(0.5, 1.0, "calibration").iterate(hypotheses, message="rendering hypotheses"):
        cameras = orbit_cameras(SENSES[sense] * azimuths[:-1], elevation_deg, size=size)
        placed = rmesh.transformed(scale * factor, offset * factor)  # scaled about the orbit centre
        rendered = render_multiview(placed, cameras)
        table[(sense, factor)] = float(silhouette_iou(generated.masks[:-1], rendered.masks).mean())
    (best_sense, best_scale), best = max(table.items(), key=lambda item: item[1])
    return OrbitCalibration(best_sense, best_scale, best, table)
