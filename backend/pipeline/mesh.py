"""Keypoints for an existing mesh: place it in the world frame, render its orbit views (the render
generator plays SV3D's role with true views), run the keypoint model, map the keypoints back.

A mesh comes in its own coordinates with an up axis: "Z", or "Y" for a glTF's coordinates as
stored. The model always sees the object upright (z up); `MeshKeypoints` maps keypoints and
cameras back to the mesh's own coordinates. `pipeline.run.run_mesh_pipeline` runs these steps
(`mesh_keypoints`) as stages of the one mesh-rigging path; `predict_keypoints` is the same prediction as a function.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keydiff3d_addon.rigcore.frames import FrameError, rotation_to_z_up

from ..device import resolve_device
from ..errors import InputError
from ..geometry import Cameras, Placement, fit_to_world
from ..geometry.mesh import RenderMesh
from ..mesh_io import load_mesh
from ..multiview.base import MultiViewResult
from ..multiview.render_generator import RenderGenerator
from ..progress import Progress
from ..synthetic.renderer import as_render_mesh
from .keypoints import KeypointPrediction, load_keypoint_model, predict_from_views
from .timing import StageClock

RENDER_SIZE = 256  # px of the rendered orbit views; the model resizes to its own input size
KEYPOINT_STAGES = {"views": 2.0, "keypoints": 1.0}  # mesh_keypoints' stages: progress shares


def upright_rotation(up_axis: str) -> np.ndarray:
    """(3, 3) rotation from a mesh's own coordinates with `up_axis` up to upright (z-up) ones."""
    try:
        return rotation_to_z_up(up_axis)
    except FrameError as error:
        raise InputError(str(error)) from None


@dataclass
class MeshKeypoints:
    """The keypoint stage's result for a mesh. `views` and `prediction` are in the world frame;
    `placement` maps them to the upright own frame (world = scale * (upright - center)) and
    `up_axis` says how the mesh's own coordinates relate to upright ones."""

    views: MultiViewResult
    prediction: KeypointPrediction
    placement: Placement
    up_axis: str = "Z"

    @property
    def keypoints_own(self) -> np.ndarray:
        """(N, 3) keypoints in the mesh's own coordinates."""
        return self.placement.to_own(self.prediction.keypoints) @ upright_rotation(self.up_axis)  # rotate back

    @property
    def views_own(self) -> MultiViewResult:
        """The views with cameras for the mesh's own coordinates."""
        return views_in_own_frame(self.views, self.placement, upright_rotation(self.up_axis))


def views_in_own_frame(
    views: MultiViewResult, placement: Placement, rotation: np.ndarray | None = None
) -> MultiViewResult:
    """The same views with cameras for an object's own frame, where world = s (rotation @ own - c)
    (rotation: own coordinates -> upright ones, identity by default).

    R (rotation own - c) s + t projects like (R rotation) own - R c + t / s (a camera's depth
    scale does not change its pixels), so the own-frame camera is R' = R rotation, t' = t / s - R c:
    exact, and still a rigid camera."""
    cams = views.cameras
    rotation = np.eye(3) if rotation is None else np.asarray(rotation, np.float64)
    t_own = cams.t / placement.scale - np.einsum("vij,j->vi", cams.R, placement.center)
    own = Cameras(cams.K, cams.R @ rotation, t_own, cams.width, cams.height, cams.azimuth_deg, cams.elevation_deg)
    return MultiViewResult(views.images, views.masks, own, views.input_view, views.features, views.feature_names, None)


def as_mesh(mesh) -> RenderMesh:
    """A RenderMesh from a RenderMesh, trimesh object, synthetic Creature or a mesh file path (read
    in the file's own coordinates, as stored)."""
    if isinstance(mesh, (str, Path)):
        return load_mesh(mesh, up_axis="Z")
    return as_render_mesh(mesh)


def render_mesh_views(
    mesh: RenderMesh, size: int = RENDER_SIZE, progress: Progress | None = None
) -> tuple[MultiViewResult, Placement]:
    """The 21 SV3D-p orbit views of `mesh` (own frame, z up) after placing it in the world frame."""
    placement = fit_to_world(mesh.vertices)
    world = mesh.transformed(placement.scale, -placement.center * placement.scale)
    return RenderGenerator(size=size).from_mesh(world, progress), placement


def mesh_keypoints(
    mesh: RenderMesh, model, clock: StageClock, render_size: int = RENDER_SIZE, up_axis: str = "Z"
) -> MeshKeypoints:
    """Render + predict with an already loaded model (`keypoints.LoadedModel`) as the stages "views"
    and "keypoints" of `clock`; `mesh` in its own coordinates with `up_axis` up."""
    upright = mesh.rotated(upright_rotation(up_axis)) if up_axis != "Z" else mesh
    with clock.stage("views", "rendering orbit views") as span:
        views, placement = render_mesh_views(upright, render_size, span)
    with clock.stage("keypoints", "predicting keypoints") as span:
        prediction = predict_from_views(views, model, span)
    return MeshKeypoints(views, prediction, placement, up_axis)


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
    upright_rotation(up_axis)  # checks the value before the model loads
    model = load_keypoint_model(checkpoint, resolve_device(device))
    clock = StageClock(progress or Progress(), KEYPOINT_STAGES)
    result = mesh_keypoints(as_mesh(mesh), model, clock, render_size, up_axis)
    info = {
        "placement": result.placement.to_dict(),
        "checkpoint": result.prediction.checkpoint,
        "views": result.views,
        "keypoints_world": result.prediction.keypoints,
        "up_axis": up_axis,
    }
    return result.keypoints_own, result.prediction.adjacency, info
