"""Reconstruction metrics against analytic answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

from keydiff3d.geometry import orbit_cameras
from keydiff3d.reconstruction.metrics import (
    chamfer_percent,
    evaluate,
    normal_consistency,
    occupancy,
    psnr,
    render_colors,
    rerender_psnr,
    volume_iou,
)


def _sphere(radius: float) -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=4, radius=radius)


def test_chamfer_of_concentric_spheres_is_the_radius_gap():
    outer, inner = _sphere(0.5), _sphere(0.4)
    diagonal = math.sqrt(3) * 1.0
    expected = 100 * 0.1 / diagonal
    assert chamfer_percent(inner, outer) == pytest.approx(expected, rel=0.05)
    assert chamfer_percent(outer, outer) < 0.2 * expected  # only sampling noise


def test_volume_iou_of_nested_spheres_is_the_volume_ratio():
    assert volume_iou(_sphere(0.4), _sphere(0.5)) == pytest.approx(0.8**3, abs=0.02)
    assert volume_iou(_sphere(0.5), _sphere(0.5)) > 0.99


def test_overlapping_parts_count_once():
    """Two overlapping closed boxes (a creature built from primitives) fill their union."""
    a = trimesh.creation.box(extents=[0.6, 0.4, 0.4])
    b = trimesh.creation.box(extents=[0.4, 0.4, 0.6])
    soup = trimesh.util.concatenate([a, b])
    origin, spacing, shape = np.full(3, -0.345), 0.01, (70, 70, 70)  # no voxel centre on a face
    inside = occupancy(soup, origin, spacing, shape)
    axis = origin[0] + np.arange(70) * spacing
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    in_a = (np.abs(x) < 0.3) & (np.abs(y) < 0.2) & (np.abs(z) < 0.2)
    in_b = (np.abs(x) < 0.2) & (np.abs(y) < 0.2) & (np.abs(z) < 0.3)
    truth = in_a | in_b
    assert (inside == truth).mean() > 0.99
    assert inside[34, 34, 34]  # near the centre, lies in both parts: parity would call it outside


def test_normal_consistency():
    sphere = _sphere(0.5)
    assert normal_consistency(sphere, sphere) > 0.98
    inverted = sphere.copy()
    inverted.invert()
    assert normal_consistency(inverted, sphere) > 0.98  # orientation-free, like the usual metric
    assert normal_consistency(trimesh.creation.box(extents=[1, 1, 1]), sphere) < 0.95


def test_psnr_values():
    a = np.zeros((2, 4, 4, 3))
    assert psnr(a, a) == math.inf
    assert psnr(a + 0.1, a) == pytest.approx(20.0)
    mask = np.zeros((2, 4, 4))
    mask[:, :2] = 1
    b = a.copy()
    b[:, 2:] = 1.0  # errors only outside the mask
    assert psnr(b, a, mask) == math.inf


def test_rerender_psnr_of_a_mesh_against_its_own_render_is_perfect():
    sphere = _sphere(0.3)
    rgb = 0.5 + 0.4 * np.sign(sphere.vertices)
    sphere.visual = trimesh.visual.ColorVisuals(
        sphere, vertex_colors=np.concatenate([np.round(rgb * 255), np.full((len(rgb), 1), 255)], 1).astype(np.uint8)
    )
    cameras = orbit_cameras(size=48).subset([0, 5, 10])
    images, masks = render_colors(sphere, cameras)
    assert images.shape == (3, 48, 48, 3) and masks.shape == (3, 48, 48)
    assert 0.05 < masks.mean() < 0.5
    assert rerender_psnr(sphere, images, masks, cameras) == math.inf
    darker = np.clip(images - 0.1 * masks[..., None], 0, 1)
    assert rerender_psnr(sphere, darker, masks, cameras) == pytest.approx(20.0, abs=0.1)


def test_evaluate_bundles_the_geometry_metrics():
    q = evaluate(_sphere(0.45), _sphere(0.5), samples=5000, iou_resolution=64)
    assert q.chamfer_pct > 0 and 0.6 < q.volume_iou < 0.8 and q.normal_consistency > 0.95 and q.psnr is None
    assert set(q.to_dict()) == {"chamfer_pct", "volume_iou", "normal_consistency", "psnr"}
