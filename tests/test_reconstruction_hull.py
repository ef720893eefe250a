"""Visual hull: accuracy on known shapes, soft voting, thin parts, colours, texture, failure modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from keydiff3d.errors import Cancelled, DeviceError, InputError
from keydiff3d.geometry import orbit_cameras
from keydiff3d.progress import Progress
from keydiff3d.reconstruction import HullConfig, reconstruct, resolve_method, visual_hull
from keydiff3d.reconstruction.coloring import project_colors
from keydiff3d.reconstruction.metrics import chamfer_percent
from keydiff3d.reconstruction.raster import depth_maps
from keydiff3d.synthetic.renderer import render_multiview

SIZE = 128
FAST = HullConfig(resolution=96, target_faces=6000)


def _colored(mesh: trimesh.Trimesh, rgb: np.ndarray) -> trimesh.Trimesh:
    rgba = np.concatenate([rgb, np.ones((len(rgb), 1))], 1)
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=np.round(rgba * 255).astype(np.uint8))
    return mesh


@pytest.fixture(scope="module")
def sphere_views():
    """A sphere of radius 0.3, red above z = 0 and blue below, rendered at the 21 SV3D cameras."""
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.3)
    top = sphere.vertices[:, 2:3] > 0
    sphere = _colored(sphere, np.where(top, [[0.9, 0.1, 0.1]], [[0.1, 0.1, 0.9]]))
    return sphere, render_multiview(sphere, orbit_cameras(size=SIZE))


@pytest.fixture(scope="module")
def thin_views():
    """A ball with a thin stick (radius 0.015, ~2.5 voxels at 96^3) reaching down to z = -0.45."""
    ball = trimesh.creation.icosphere(subdivisions=3, radius=0.2)
    stick = trimesh.creation.cylinder(radius=0.015, segment=[[0, 0, 0], [0, 0, -0.45]], sections=16)
    mesh = trimesh.util.concatenate([ball, stick])
    return mesh, render_multiview(mesh, orbit_cameras(size=SIZE))


def test_sphere_is_accurate_watertight_and_within_budget(sphere_views):
    sphere, views = sphere_views
    result = visual_hull(views.images, views.masks, views.cameras, FAST)
    assert result.mesh.is_watertight and result.report.watertight
    assert len(result.mesh.split()) == 1
    assert len(result.mesh.faces) <= FAST.target_faces
    assert chamfer_percent(result.mesh, sphere, samples=5000) < 1.5
    radius = np.linalg.norm(result.mesh.vertices, axis=1)
    assert abs(np.median(radius) - 0.3) < 0.015  # a hull never cuts inside; 21 views bound it tightly
    assert result.mesh.volume > 0  # outward normals


def test_vertex_colours_follow_the_views(sphere_views):
    _, views = sphere_views
    mesh = visual_hull(views.images, views.masks, views.cameras, FAST).mesh
    rgb = mesh.visual.vertex_colors[:, :3].astype(float) / 255
    z = mesh.vertices[:, 2]
    upper, lower = rgb[z > 0.1].mean(0), rgb[z < -0.1].mean(0)
    assert upper[0] > upper[2] + 0.3, upper  # red dominates above (lighting darkens, hue stays)
    assert lower[2] > lower[0] + 0.3, lower


@pytest.mark.parametrize("bad_views", [[3], [3, 11]])
def test_soft_voting_tolerates_bad_masks(sphere_views, bad_views):
    sphere, views = sphere_views
    masks = views.masks.copy()
    masks[bad_views, SIZE // 2 :, :] = 0.0  # these views lost the lower half of the object
    strict = visual_hull(views.images, masks, views.cameras, HullConfig(resolution=96, target_faces=6000, tolerance=0))
    soft = visual_hull(
        views.images, masks, views.cameras, HullConfig(resolution=96, target_faces=6000, tolerance=len(bad_views))
    )
    full_volume = 4 / 3 * np.pi * 0.3**3
    assert strict.mesh.volume < 0.8 * full_volume  # classic carving cuts the object with the bad view
    assert soft.mesh.volume > 0.95 * full_volume
    assert chamfer_percent(soft.mesh, sphere, samples=5000) < 1.5


def test_thin_parts_survive(thin_views):
    _, views = thin_views
    mesh = visual_hull(views.images, views.masks, views.cameras, FAST).mesh
    assert mesh.vertices[:, 2].min() < -0.42  # the stick's tip is still there
    assert len(mesh.split()) == 1


def test_texture_bake_matches_vertex_colours(sphere_views):
    _, views = sphere_views
    result = visual_hull(
        views.images, views.masks, views.cameras, HullConfig(resolution=64, target_faces=2000, texture_size=256)
    )
    textured = result.textured
    assert isinstance(textured.visual, trimesh.visual.TextureVisuals)
    uv = textured.visual.uv
    assert uv.min() >= 0 and uv.max() <= 1
    image = np.asarray(textured.visual.material.image.convert("RGB"), float) / 255
    assert image.shape == (256, 256, 3)
    # sample the texture at the corners' uvs: the colour of the surface point at each vertex
    px = np.clip((uv * [256, 256]).astype(int), 0, 255)
    sampled = image[255 - px[:, 1], px[:, 0]]
    top = textured.vertices[:, 2] > 0.1
    assert sampled[top, 0].mean() > sampled[top, 2].mean() + 0.3


def test_hidden_points_take_no_colour_from_a_view():
    """A point behind the surface (as seen from the camera) gets zero weight from that view."""
    cams = orbit_cameras(np.array([0.0]), 0.0, size=64)
    wall = trimesh.creation.box(extents=[0.05, 0.8, 0.8])  # between the camera (+x) and the origin
    wall.apply_translation([0.3, 0, 0])
    zbuffer = depth_maps(wall.vertices, wall.faces, cams)
    images = np.ones((1, 64, 64, 3), np.float32)
    masks = np.ones((1, 64, 64), np.float32)
    points = np.array([[0.4, 0.0, 0.0], [-0.2, 0.0, 0.0]])  # in front of the wall, behind it
    normals = np.array([[1.0, 0, 0], [1.0, 0, 0]])
    _, weight = project_colors(points, normals, images, masks, cams, zbuffer)
    assert weight[0] > 0.5 and weight[1] == 0


@pytest.mark.parametrize("corrupt, message", [("empty", "view 4"), ("full", "whole image")])
def test_degenerate_masks_are_clear_errors(sphere_views, corrupt, message):
    _, views = sphere_views
    masks = views.masks.copy()
    masks[4] = 0.0 if corrupt == "empty" else 1.0
    with pytest.raises(InputError, match=message):
        visual_hull(views.images, masks, views.cameras, FAST)


def test_mismatched_inputs_are_rejected(sphere_views):
    _, views = sphere_views
    with pytest.raises(InputError):
        visual_hull(views.images, views.masks[:, :64], views.cameras, FAST)
    with pytest.raises(InputError):
        visual_hull(views.images[:5], views.masks[:5], views.cameras, FAST)
    bad = views.masks.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        visual_hull(views.images, bad, views.cameras, FAST)
    with pytest.raises(InputError, match="tolerance"):
        visual_hull(views.images, views.masks, views.cameras, HullConfig(tolerance=15))


def test_cancellation_stops_the_hull(sphere_views):
    _, views = sphere_views
    progress = Progress()
    progress.cancel()
    with pytest.raises(Cancelled):
        visual_hull(views.images, views.masks, views.cameras, FAST, progress)


def test_progress_reaches_the_end(sphere_views):
    _, views = sphere_views
    seen: list[float] = []
    visual_hull(views.images, views.masks, views.cameras, FAST, Progress(lambda stage, f, msg: seen.append(f)))
    assert seen == sorted(seen) and seen[-1] == 1.0


def test_reconstruct_switch(sphere_views):
    _, views = sphere_views
    result = reconstruct(views.images, views.masks, views.cameras, "hull", hull=FAST)
    assert result.method == "hull" and result.gaussians is None and "hull" in result.timings
    with pytest.raises(InputError):
        resolve_method("poisson")
    expected = "frosting" if torch.cuda.is_available() else "hull"
    assert resolve_method("auto") == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only message")
def test_frosting_without_cuda_is_a_device_error(sphere_views):
    _, views = sphere_views
    with pytest.raises(DeviceError, match="CUDA"):
        reconstruct(views.images, views.masks, views.cameras, "frosting")


def test_an_object_cut_by_the_cube_is_reported():
    big = trimesh.creation.box(extents=[1.3, 0.3, 0.3])  # longer than the [-0.6, 0.6] cube
    views = render_multiview(big, orbit_cameras(size=SIZE))
    result = visual_hull(views.images, views.masks, views.cameras, FAST)
    assert any("cut off" in p for p in result.report.problems)
