import json

import numpy as np
import pytest
import torch

from keydiff3d.geometry import (
    OBJECT_EXTENT,
    SV3D_INPUT_FRAME,
    Cameras,
    fit_to_world,
    orbit_cameras,
    project_points,
    sv3d_azimuths_deg,
)


def test_sv3d_azimuths_put_the_input_view_last():
    az = sv3d_azimuths_deg()
    assert az.shape == (21,)
    assert az[SV3D_INPUT_FRAME] == 0.0
    np.testing.assert_allclose(az[:20], np.arange(1, 21) * 360 / 21)


def test_orbit_cameras_sit_on_the_sphere_and_look_at_the_origin():
    cams = orbit_cameras(size=64)
    np.testing.assert_allclose(np.linalg.norm(cams.centers, axis=1), 2.0, atol=1e-9)
    np.testing.assert_allclose(np.degrees(np.arcsin(cams.centers[:, 2] / 2.0)), 10.0, atol=1e-9)
    uv, depth = project_points(cams.P, np.zeros((1, 3)))
    np.testing.assert_allclose(uv[:, 0], 32.0, atol=1e-9)  # the origin projects to the image centre
    np.testing.assert_allclose(depth[:, 0], 2.0, atol=1e-9)
    for R in cams.R:  # proper rotations
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0)


def test_azimuth_turns_counter_clockwise_seen_from_above_and_z_is_up_in_the_image():
    cams = orbit_cameras(size=64)
    assert cams.centers[SV3D_INPUT_FRAME, 0] > 1.9  # input view looks from +x
    assert cams.centers[0, 1] > 0  # frame 0 at +17 deg: towards +y
    uv, _ = project_points(cams.P[SV3D_INPUT_FRAME], np.array([[0.0, 0.0, 0.3], [0.0, 0.3, 0.0]]))
    assert uv[0, 1] < 32  # a point above the origin is higher in the image (v grows downwards)
    assert uv[1, 0] > 32  # +y appears to the right when looking from +x towards -x


def test_project_points_numpy_and_torch_agree_with_focal_length():
    cams = orbit_cameras(size=576)
    focal = cams.K[0, 0, 0]
    assert focal == pytest.approx(288 / np.tan(np.radians(16.9)), rel=1e-9)
    pts = np.random.default_rng(0).uniform(-0.5, 0.5, (10, 3))
    uv_np, d_np = project_points(cams.P, pts)
    uv_t, d_t = project_points(torch.from_numpy(cams.P), torch.from_numpy(pts))
    np.testing.assert_allclose(uv_np, uv_t.numpy(), atol=1e-9)
    np.testing.assert_allclose(d_np, d_t.numpy(), atol=1e-9)


def test_resized_cameras_scale_pixels_and_json_round_trips(tmp_path):
    cams = orbit_cameras(size=576)
    small = cams.resized(72, 36)
    pts = np.random.default_rng(1).uniform(-0.5, 0.5, (5, 3))
    uv, _ = project_points(cams.P, pts)
    uv_small, _ = project_points(small.P, pts)
    np.testing.assert_allclose(uv_small, uv * np.array([72 / 576, 36 / 576]), atol=1e-9)
    cams.save_json(tmp_path / "cameras.json")
    loaded = Cameras.load_json(tmp_path / "cameras.json")
    np.testing.assert_allclose(loaded.P, cams.P)
    assert json.loads((tmp_path / "cameras.json").read_text())["width"] == 576


def test_fit_to_world_centres_and_scales_and_inverts():
    verts = np.random.default_rng(2).uniform([1, 2, 3], [3, 3, 7], (100, 3))
    placement = fit_to_world(verts)
    world = placement.to_world(verts)
    np.testing.assert_allclose((world.max(0) + world.min(0)) / 2, 0, atol=1e-12)
    assert (world.max(0) - world.min(0)).max() == pytest.approx(OBJECT_EXTENT)
    np.testing.assert_allclose(placement.to_own(world), verts)
    with pytest.raises(ValueError):
        fit_to_world(np.zeros((0, 3)))
    with pytest.raises(ValueError):
        fit_to_world(np.array([[0, 0, np.nan]]))
