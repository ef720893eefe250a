"""Camera conventions shared by every stage (renderer, model, reconstruction, SV3D)."""

from .cameras import (
    SV3D_ELEVATION_DEG,
    SV3D_FOV_DEG,
    SV3D_INPUT_FRAME,
    SV3D_NUM_FRAMES,
    SV3D_RADIUS,
    Cameras,
    look_at,
    orbit_cameras,
    project_points,
    sv3d_azimuths_deg,
)
from .placement import CUBE_HALF, OBJECT_EXTENT, Placement, fit_to_world

__all__ = [
    "CUBE_HALF",
    "OBJECT_EXTENT",
    "Placement",
    "fit_to_world",
    "SV3D_ELEVATION_DEG",
    "SV3D_FOV_DEG",
    "SV3D_INPUT_FRAME",
    "SV3D_NUM_FRAMES",
    "SV3D_RADIUS",
    "Cameras",
    "look_at",
    "orbit_cameras",
    "project_points",
    "sv3d_azimuths_deg",
]
