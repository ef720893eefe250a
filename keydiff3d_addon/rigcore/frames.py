"""The two up-axis conventions and the one turn between them (numpy only; used by the add-on and the
backend alike).

The project's frames are z up (Blender's, and the generator's world frame). glTF, and a rig bundle
with `up_axis` "Y", are y up; they are turned z-up with (x, y, z) -> (x, -z, y), as Blender's glTF
importer does. Points are row vectors (..., 3): `to_z_up(p, "Y") == p @ Y_UP_TO_Z_UP.T`.
"""

from __future__ import annotations

import numpy as np

UP_AXES = ("Z", "Y")

# A rotation: z-up coordinates = Y_UP_TO_Z_UP @ y-up coordinates (column vectors); its transpose goes back.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
Z_UP_TO_Y_UP = Y_UP_TO_Z_UP.T


class FrameError(ValueError):
    """An up axis other than "Z" or "Y"."""


def rotation_to_z_up(up_axis: str) -> np.ndarray:
    """(3, 3) rotation from coordinates with `up_axis` up to z-up ones."""
    if up_axis == "Z":
        return np.eye(3)
    if up_axis == "Y":
        return Y_UP_TO_Z_UP
    raise FrameError(f"up_axis must be 'Z' or 'Y', got {up_axis!r}")


def to_z_up(points, up_axis: str) -> np.ndarray:
    """(..., 3) float64 points given with `up_axis` up, in z-up coordinates."""
    return np.asarray(points, np.float64) @ rotation_to_z_up(up_axis).T


def from_z_up(points, up_axis: str) -> np.ndarray:
    """(..., 3) float64 z-up points in coordinates with `up_axis` up (the inverse of `to_z_up`)."""
    return np.asarray(points, np.float64) @ rotation_to_z_up(up_axis)
