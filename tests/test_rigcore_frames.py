"""The one y-up <-> z-up turn (rigcore.frames), as Blender's glTF importer does it."""

from __future__ import annotations

import numpy as np
import pytest

from keydiff3d_addon.rigcore.frames import Y_UP_TO_Z_UP, Z_UP_TO_Y_UP, FrameError, from_z_up, rotation_to_z_up, to_z_up


def test_the_turn_is_blenders_gltf_convention():
    np.testing.assert_array_equal(to_z_up([1.0, 2.0, 3.0], "Y"), [1.0, -3.0, 2.0])  # (x, y, z) -> (x, -z, y)
    np.testing.assert_array_equal(to_z_up([1.0, 2.0, 3.0], "Z"), [1.0, 2.0, 3.0])
    assert np.linalg.det(Y_UP_TO_Z_UP) == pytest.approx(1.0)  # a rotation, not a mirror
    np.testing.assert_array_equal(Z_UP_TO_Y_UP @ Y_UP_TO_Z_UP, np.eye(3))


def test_round_trip_on_any_shape():
    points = np.random.default_rng(0).normal(size=(4, 5, 3))
    np.testing.assert_allclose(from_z_up(to_z_up(points, "Y"), "Y"), points)
    np.testing.assert_allclose(to_z_up(points, "Y"), points @ rotation_to_z_up("Y").T)


def test_unknown_up_axis():
    with pytest.raises(FrameError, match="'Z' or 'Y'"):
        to_z_up([0.0, 0.0, 1.0], "X")
