"""Keypoints for an existing mesh: place it in the world frame, render its orbit views (the render
generator plays SV3D's role with true views), run the keypoint model, map the keypoints back.

`predict_keypoints` is what `keydiff3d rig-mesh` without --keypoints calls; the service's mesh jobs
("Rig selected mesh") run the same steps inside `pipeline.run.run_mesh_pipeline`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..geometry import Placement, fit_to_world
from ..mesh_io import Y_UP_TO_Z_UP, load_mesh
from ..multiview.base import MultiViewResult
from ..multiview.render_generator import RenderGenerator
from ..progress import Progress
from ..synthetic.renderer import RenderMesh, as_render_mesh
from .device import resolve_device
from .keypoints import KeypointPrediction, load_keypoint_model, predict_from_views

RENDER_SIZE = 256  # px of the rendered orbit views; the model resizes to its own input size


@dataclass
class MeshKeypoints:
    """The keypoint stage's result for a mesh. views and prediction are in the world frame;
    `placement` maps them to the mesh's own frame (world = scale * (own - center))."""

    views: MultiViewResult
    prediction: KeypointPrediction
    placement: Placement

    @property
    def keypoints_own(self) -> np.ndarray:
        return self.placement.to_own(self.prediction.keypoints)


def as_mesh(mesh) -> RenderMesh:
    """A RenderMesh from a RenderMesh, trimesh object, synthetic Creature or a mesh file path (read
    in the file's own coordinates, as stored)."""
    if isinstance(mesh, (str, Path)):
        return load_mesh(mesh, up_axis="Z")
    return as_render_mesh(mesh)


def render_mesh_views(mesh: RenderMesh, size: int = RENDER_SIZE, progress: Progress | None = None) -> tuple[MultiViewResult, Placement]:
    """The 21 SV3D-p orbit views of `mesh` (own frame, z up) after placing it in the world frame."""
    placement = fit_to_world(mesh.vertices)
    world = mesh.transformed(placement.scale, -placement.center * placement.scale)
    return RenderGenerator(size=size).from_mesh(world, progress), placement


def mesh_keypoints(mesh: RenderMesh, model, progress: Progress | None = None, render_size: int = RENDER_SIZE) -> MeshKeypoints:
    """Render + predict with an already loaded model (`keypoints.LoadedModel`)."""
    progress = progress or Progress()
    views, placement = render_mesh_views(mesh, render_size, progress.span(0.0, 0.7, "views"))
    prediction = predict_from_views(views, model, progress.span(0.7, 1.0, "keypoints"))
    return MeshKeypoints(views, prediction, placement)


def predict_keypoints(
    mesh,
    progress: Progress | None = None,
    *,
    checkpoint: str | Path | None = None,
    device: str = "auto",
    render_size: int = RENDER_SIZE,
    up_axis: str = "Z",
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Keypoints of a mesh in its own frame.

    mesh: RenderMesh, trimesh.Trimesh/Scene, Creature, or a mesh file path (read in its own
    coordinates, as stored). up_axis: the up axis of `mesh`'s coordinates ("Y" for a glTF's own
    coordinates); the model sees the object upright (z up) either way and the keypoints come back
    in `mesh`'s own coordinates.
    Returns (keypoints (N, 3) in the mesh's own frame, adjacency (N, N), info) where info holds
    "placement" (dict), "checkpoint" (path), "views" (the world-frame MultiViewResult) and
    "keypoints_world" (N, 3).
    """
    if up_axis not in ("Y", "Z"):
        raise InputError(f"up_axis must be 'Y' or 'Z', got {up_axis!r}")
    model = load_keypoint_model(checkpoint, resolve_device(device))
    upright = as_mesh(mesh)
    if up_axis == "Y":
        upright = upright.rotated(Y_UP_TO_Z_UP)
    result = mesh_keypoints(upright, model, progress, render_size)
    keypoints = result.keypoints_own if up_axis == "Z" else result.keypoints_own @ Y_UP_TO_Z_UP  # rotate back
    info = {
        "placement": result.placement.to_dict(),
        "checkpoint": result.prediction.checkpoint,
        "views": result.views,
        "keypoints_world": result.prediction.keypoints,
        "up_axis": up_axis,
    }
    return keypoints, result.prediction.adjacency, info
