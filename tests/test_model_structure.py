"""Soft-argmax, keypoint projection, heatmaps, edge maps, adjacency, triangulation, augmentation."""

import numpy as np
import pytest
import torch

from keydiff3d.geometry import orbit_cameras, project_points
from keydiff3d.model.augment import color_jitter, random_affine, warp
from keydiff3d.model.lifting import voxel_centers
from keydiff3d.model.softargmax import SoftArgmax2D, SoftArgmax3D
from keydiff3d.model.structure import Adjacency, edge_maps, keypoint_heatmaps, project_keypoints
from keydiff3d.model.triangulation import triangulate

torch.set_num_threads(1)


def test_soft_argmax_3d_recovers_planted_peaks():
    M, half = 12, 0.6
    centers = voxel_centers(M, half)
    heatmaps = torch.zeros(2, 3, M, M, M)
    planted = [(1, 5, 9), (11, 0, 6), (4, 4, 4)]
    for n, (i, j, k) in enumerate(planted):
        heatmaps[:, n, i, j, k] = 60.0  # a sharp peak: softmax mass ~1 on the voxel
    points, probs = SoftArgmax3D(M, half, beta=1.0, learnable=False)(heatmaps)
    for n, (i, j, k) in enumerate(planted):
        torch.testing.assert_close(points[0, n], centers[i, j, k], atol=1e-5, rtol=0)
    torch.testing.assert_close(probs.sum(dim=(-3, -2, -1)), torch.ones(2, 3))


def test_soft_argmax_3d_is_an_expectation_between_voxels():
    """Two equal peaks -> the midpoint; the temperature scales sharpness, not the expectation."""
    M = 8
    heatmaps = torch.zeros(1, 1, M, M, M)
    heatmaps[0, 0, 2, 3, 4] = heatmaps[0, 0, 4, 3, 4] = 5.0
    module = SoftArgmax3D(M, 0.6, beta=10.0, learnable=True)
    points, _ = module(heatmaps)
    centers = voxel_centers(M, 0.6)
    torch.testing.assert_close(points[0, 0], centers[3, 3, 4], atol=1e-5, rtol=0)
    assert module.temperature().item() == pytest.approx(10.0)
    points.sum().backward()
    assert module.temperature.log_beta.grad is not None


def test_soft_argmax_2d_recovers_peak_in_pixel_convention():
    heatmaps = torch.full((1, 2, 6, 10), -50.0)
    heatmaps[0, 0, 2, 7] = 50.0  # row 2, column 7 -> (u, v) = (7.5, 2.5)
    heatmaps[0, 1, 5, 0] = 50.0
    uv, probs = SoftArgmax2D(learnable=False)(heatmaps)
    torch.testing.assert_close(uv[0], torch.tensor([[7.5, 2.5], [0.5, 5.5]]), atol=1e-4, rtol=0)
    assert probs.shape == heatmaps.shape


def test_projection_round_trips_with_orbit_cameras():
    """Project into the 21 SV3D-p views, triangulate back: the same points; agrees with geometry.project_points."""
    cams = orbit_cameras(size=128)
    rng = np.random.default_rng(0)
    X = rng.uniform(-0.5, 0.5, (1, 7, 3))
    P = torch.tensor(cams.P[None])
    uv, depth = project_keypoints(P, torch.tensor(X))
    ref_uv, ref_depth = project_points(cams.P, X[0][None])
    np.testing.assert_allclose(uv[0].numpy(), ref_uv, rtol=1e-12)
    np.testing.assert_allclose(depth[0].numpy(), ref_depth, rtol=1e-12)
    assert (depth > 0).all()
    back = triangulate(P, uv)
    np.testing.assert_allclose(back.numpy(), X, atol=1e-6)


def test_projection_agrees_with_the_renderer():
    """A small sphere rendered at a known point: its mask centroid is where the model projects the point."""
    trimesh = pytest.importorskip("trimesh")
    from keydiff3d.multiview.render_generator import RenderGenerator

    center = np.array([0.25, -0.15, 0.1])
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.05)
    sphere.apply_translation(center)
    result = RenderGenerator(size=96, num_views=6).from_mesh(sphere)
    uv, _ = project_keypoints(torch.tensor(result.cameras.P[None]), torch.tensor(center[None, None]))
    rows, cols = np.mgrid[0:96, 0:96] + 0.5
    for view in range(6):
        m = result.masks[view]
        centroid = np.array([(m * cols).sum() / m.sum(), (m * rows).sum() / m.sum()])
        np.testing.assert_allclose(uv[0, view, 0].numpy(), centroid, atol=0.35)


def point_segment_distance(p, a, b):
    ab = b - a
    t = 0.0 if ab @ ab == 0 else np.clip((p - a) @ ab / (ab @ ab), 0, 1)
    return np.linalg.norm(p - (a + t * ab))


def test_edge_and_keypoint_maps_equal_direct_evaluation():
    rng = np.random.default_rng(1)
    N, h, w, sigma = 5, 9, 13, 1.7
    uv = rng.uniform(-2, 14, (1, 2, N, 2))
    uv[0, 1, 3] = uv[0, 1, 4]  # a degenerate (zero-length) segment
    weights = rng.uniform(0, 2, (N, N))
    weights = (weights + weights.T) / 2
    maps = edge_maps(torch.tensor(uv), torch.tensor(weights), (h, w), sigma, pair_chunk=3).numpy()
    heat = keypoint_heatmaps(torch.tensor(uv), (h, w), sigma).numpy()
    assert maps.shape == (1, 2, h, w) and heat.shape == (1, 2, N, h, w)
    for view in range(2):
        for row in range(h):
            for col in range(w):
                p = np.array([col + 0.5, row + 0.5])
                expected = max(
                    weights[i, j]
                    * np.exp(-(point_segment_distance(p, uv[0, view, i], uv[0, view, j]) ** 2) / (2 * sigma**2))
                    for i in range(N)
                    for j in range(i + 1, N)
                )
                assert maps[0, view, row, col] == pytest.approx(expected, rel=1e-9, abs=1e-12)
                for n in range(N):
                    d2 = ((p - uv[0, view, n]) ** 2).sum()
                    assert heat[0, view, n, row, col] == pytest.approx(
                        np.exp(-d2 / (2 * sigma**2)), rel=1e-9, abs=1e-12
                    )


def test_adjacency_starts_small_symmetric_and_learns_512x_faster():
    torch.manual_seed(0)
    adjacency = Adjacency(6)
    w = adjacency()
    torch.testing.assert_close(w, w.T)
    assert torch.all(w.diagonal() == 0)
    off = w[~torch.eye(6, dtype=torch.bool)]
    assert off.min() > 0.012 and off.max() < 0.025  # softplus(-4 +- noise) ~ 0.018
    # one Adam step of size lr moves every logit by ~512 * lr
    optimizer = torch.optim.Adam(adjacency.parameters(), lr=1e-3)
    before = adjacency.logits().detach().clone()
    (-adjacency().sum()).backward()
    optimizer.step()
    change = (adjacency.logits().detach() - before)[~torch.eye(6, dtype=torch.bool)]
    torch.testing.assert_close(change, torch.full_like(change, 512 * 1e-3), rtol=1e-3, atol=0)


def test_triangulation_single_view_returns_ray_point_without_failing():
    cams = orbit_cameras(np.array([0.0]), size=64)
    X = torch.tensor([[[0.1, 0.2, -0.1]]], dtype=torch.float64)
    P = torch.tensor(cams.P[None])
    uv, _ = project_keypoints(P, X)
    Y = triangulate(P, uv)
    uv_back, _ = project_keypoints(P, Y)
    torch.testing.assert_close(uv_back, uv, atol=1e-3, rtol=0)  # on the same ray: depth is unknowable from one view
    assert torch.isfinite(Y).all()


def test_affine_augmentation_moves_projections_exactly_like_the_image():
    """Warp an image with a bright dot at a projected point: the dot lands where H @ P projects the point."""
    torch.manual_seed(0)
    size = 64
    cams = orbit_cameras(np.array([0.0]), size=size)
    X = torch.tensor([[[0.05, 0.2, 0.1]]], dtype=torch.float64)
    P = torch.tensor(cams.P[None])
    u, v = project_keypoints(P, X)[0][0, 0, 0]
    rows, cols = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    image = torch.exp(-((cols - u) ** 2 + (rows - v) ** 2) / (2 * 1.5**2)).float()[None, None]
    H = random_affine(1, (size, size), rotation_deg=25, scale=0.2, translate=0.1)
    warped = warp(image, H, (size, size))[0, 0]
    moved = project_keypoints((H.double() @ P[:, 0])[:, None], X)[0][0, 0, 0]
    weights = warped / warped.sum()
    centroid = torch.stack([(weights * cols).sum(), (weights * rows).sum()])
    torch.testing.assert_close(centroid.double(), moved, atol=0.1, rtol=0)
    assert not torch.allclose(moved, torch.stack([u, v]), atol=1.0)  # the affine did move the point


def test_edge_map_gradients_equal_a_differentiable_max_over_all_pairs():
    torch.manual_seed(2)
    N, h, w, sigma = 6, 12, 10, 1.5
    uv = (torch.rand(2, 3, N, 2, dtype=torch.float64) * 12).requires_grad_()
    raw = torch.rand(N, N, dtype=torch.float64, requires_grad=True)
    weights = raw + raw.T
    upstream = torch.randn(2, 3, h, w, dtype=torch.float64)
    (edge_maps(uv, weights, (h, w), sigma, pair_chunk=4) * upstream).sum().backward()
    fast = uv.grad.clone(), raw.grad.clone()
    uv.grad = raw.grad = None
    i, j = torch.triu_indices(N, N, offset=1)
    v, u = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    p = torch.stack([u, v], -1).double()
    a, b = uv[..., i, None, None, :], uv[..., j, None, None, :]
    t = (((p - a) * (b - a)).sum(-1) / ((b - a) ** 2).sum(-1)).clamp(0, 1)
    d2 = ((p - a - t[..., None] * (b - a)) ** 2).sum(-1)
    naive = ((raw + raw.T)[i, j][:, None, None] * torch.exp(-d2 / (2 * sigma**2))).amax(dim=-3)
    (naive * upstream).sum().backward()
    torch.testing.assert_close(fast[0], uv.grad)
    torch.testing.assert_close(fast[1], raw.grad)


def test_color_jitter_changes_the_foreground_only():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 3, 8, 8) * 0.5 + 0.25
    masks = torch.zeros(2, 3, 8, 8)
    masks[..., 2:6, 2:6] = 1.0
    jittered = color_jitter(images, masks, 0.3)
    background = masks == 0
    torch.testing.assert_close(jittered.permute(0, 1, 3, 4, 2)[background], images.permute(0, 1, 3, 4, 2)[background])
    foreground = (jittered - images).abs().permute(0, 1, 3, 4, 2)[~background]
    assert foreground.mean() > 0.01 and jittered.min() >= 0 and jittered.max() <= 1
    assert color_jitter(images, masks, 0.0) is images
