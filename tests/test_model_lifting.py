"""Voxel lifting: unprojection against a brute-force per-voxel reference, masking, chunking."""

import numpy as np
import pytest
import torch

from keydiff3d.geometry import look_at, orbit_cameras
from keydiff3d.model.lifting import (
    coordinate_channels,
    sample_views,
    scale_projections,
    softmax_over_views,
    unproject,
    voxel_centers,
)

torch.set_num_threads(1)


def random_cameras(rng: np.random.Generator, views: int, width: int, height: int) -> np.ndarray:
    """(V, 3, 4) cameras, some placed inside the cube so that voxels fall behind them or off-image."""
    P = []
    for _ in range(views):
        center = rng.normal(size=3)
        center *= rng.uniform(0.3, 2.0) / np.linalg.norm(center)
        R, t = look_at(center, rng.uniform(-0.3, 0.3, 3))
        focal = rng.uniform(0.5, 1.5) * width
        K = np.array(
            [[focal, 0, width / 2 + rng.uniform(-3, 3)], [0, focal * rng.uniform(0.8, 1.2), height / 2], [0, 0, 1]]
        )
        P.append(K @ np.concatenate([R, t[:, None]], 1))
    return np.stack(P)


def bilinear_border(feature: np.ndarray, u: float, v: float) -> np.ndarray:
    """feature (C, h, w) at continuous pixel (u, v) with centres at +0.5, edge texels repeated."""
    C, h, w = feature.shape
    x, y = u - 0.5, v - 0.5
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    fx, fy = x - x0, y - y0
    value = np.zeros(C)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            value += wy * wx * feature[:, min(max(y0 + dy, 0), h - 1), min(max(x0 + dx, 0), w - 1)]
    return value


def brute_force_volume(
    features: np.ndarray, P: np.ndarray, image_size, M: int, half: float
) -> tuple[np.ndarray, np.ndarray]:
    """features (K, C, h, w), P (K, 3, 4) for image_size = (W, H) -> (C, M, M, M) and the number of
    views seeing each voxel (M, M, M), computed one voxel at a time."""
    K, C, h, w = features.shape
    W, H = image_size
    axis = -half + (np.arange(M) + 0.5) * 2 * half / M
    out = np.zeros((C, M, M, M))
    count = np.zeros((M, M, M), int)
    for i, x in enumerate(axis):
        for j, y in enumerate(axis):
            for k, z in enumerate(axis):
                seen = []
                for view in range(K):
                    p = P[view] @ np.array([x, y, z, 1.0])
                    if p[2] <= 1e-6:
                        continue  # behind the camera
                    u, v = p[0] / p[2] * w / W, p[1] / p[2] * h / H  # image pixels -> feature pixels
                    if 0 <= u <= w and 0 <= v <= h:
                        seen.append(bilinear_border(features[view], u, v))
                count[i, j, k] = len(seen)
                if seen:
                    f = np.stack(seen)  # (k_seen, C): softmax over the views that see the voxel, per channel
                    e = np.exp(f - f.max(0))
                    out[:, i, j, k] = (e * f).sum(0) / e.sum(0)
    return out, count


@pytest.mark.parametrize("image_size,feature_size", [((40, 40), (10, 10)), ((48, 32), (12, 8)), ((30, 50), (24, 16))])
def test_unproject_matches_brute_force(image_size, feature_size):
    rng = np.random.default_rng(sum(image_size) + sum(feature_size))
    K, C, M, half = 4, 3, 7, 0.6
    w, h = feature_size
    P = random_cameras(rng, K, *image_size)
    features = rng.normal(size=(K, C, h, w)) * 2.0
    expected, count = brute_force_volume(features, P, image_size, M, half)

    volume = unproject(torch.tensor(features[None]), torch.tensor(P[None]), image_size, M, half)
    assert volume.shape == (1, C, M, M, M)
    np.testing.assert_allclose(volume[0].numpy(), expected, atol=1e-9)

    # the random cameras really exercised the masking: voxels behind cameras and views excluded
    projected = np.einsum(
        "kij,qj->kqi", P, np.c_[voxel_centers(M, half).reshape(-1, 3).double().numpy(), np.ones(M**3)]
    )
    assert (projected[..., 2] <= 0).any(), "no voxel behind a camera"
    assert (count < K).any() and (count > 0).any()


def test_out_of_image_views_are_excluded_not_zero():
    """A voxel seen by one view only takes that view's feature; one seen by none gets exactly zero."""
    cams = orbit_cameras(np.array([0.0, 90.0]), size=32)
    features = torch.full((1, 2, 1, 8, 8), -5.0)
    features[0, 0] = 3.0
    # view 0 (azimuth 0) looks along -x: y = 0.9 is ~25 deg off its axis (FOV/2 = 16.9 deg) while
    # view 1 (azimuth 90, at y ~ 1.97) sees it straight ahead
    points = torch.tensor([[0.0, 0.9, 0.15], [0.0, 0.0, 0.0], [0.0, 0.0, 50.0]], dtype=torch.float64)
    P = torch.tensor(cams.P[None])
    samples, visible = sample_views(features.double(), scale_projections(P, (32, 32), (8, 8)), points)
    lifted = softmax_over_views(samples, visible)[0, 0]
    assert visible[0, :, 0].tolist() == [False, True]
    assert lifted[0].item() == pytest.approx(-5.0)  # view 1's value, view 0 not averaged in as 0
    assert lifted[1].item() == pytest.approx((3 * np.exp(8) - 5) / (np.exp(8) + 1))
    assert visible[0, :, 2].tolist() == [False, False]
    assert lifted[2].item() == 0.0


def test_gradients_are_finite_with_unseen_voxels():
    rng = np.random.default_rng(3)
    P = torch.tensor(random_cameras(rng, 3, 16, 16)[None], dtype=torch.float32)
    features = torch.randn(1, 3, 2, 8, 8, requires_grad=True)
    unproject(features, P, (16, 16), 6, 0.6).square().sum().backward()
    assert torch.isfinite(features.grad).all()
    assert features.grad.abs().sum() > 0


def test_chunked_unprojection_equals_full_and_backpropagates():
    cams = orbit_cameras(np.array([0.0, 90.0, 180.0]), size=32)
    P = torch.tensor(cams.P[None], dtype=torch.float32)
    features = torch.randn(1, 3, 4, 16, 16, requires_grad=True)
    full = unproject(features, P, (32, 32), 8, 0.6)
    (grad_full,) = torch.autograd.grad(full.square().sum(), features)
    chunked = unproject(features, P, (32, 32), 8, 0.6, chunk=100)
    (grad_chunked,) = torch.autograd.grad(chunked.square().sum(), features)
    torch.testing.assert_close(chunked, full)
    torch.testing.assert_close(grad_chunked, grad_full)


def test_scale_projections_matches_cameras_resized():
    cams = orbit_cameras(size=64)
    P = torch.tensor(cams.P)
    scaled = scale_projections(P, (64, 64), (24, 16))
    np.testing.assert_allclose(scaled.numpy(), cams.resized(24, 16).P, rtol=1e-12)


def test_voxel_layout_is_xyz_and_centred():
    centers = voxel_centers(4, 0.6)
    assert centers.shape == (4, 4, 4, 3)
    step = 1.2 / 4
    torch.testing.assert_close(centers[0, 0, 0], torch.tensor([-0.6 + step / 2] * 3))
    torch.testing.assert_close(centers[3, 0, 0] - centers[0, 0, 0], torch.tensor([3 * step, 0.0, 0.0]))
    torch.testing.assert_close(centers[0, 0, 3] - centers[0, 0, 0], torch.tensor([0.0, 0.0, 3 * step]))
    coords = coordinate_channels(4, 0.6, batch=2)
    assert coords.shape == (2, 3, 4, 4, 4)
    assert coords.abs().max() < 1.0


def test_geometry_stays_fp32_under_autocast():
    cams = orbit_cameras(size=576)
    P = torch.tensor(cams.P, dtype=torch.float32)
    X = torch.rand(1, 50, 3) - 0.5
    from keydiff3d.model.lifting import project_fp32

    reference = project_fp32(P, X)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        uv, _ = project_fp32(P, X)
        volume = unproject(torch.randn(1, 21, 2, 9, 9).bfloat16(), P[None], (576, 576), 4, 0.6)
    assert uv.dtype == torch.float32
    torch.testing.assert_close(uv, reference)
    assert torch.isfinite(volume).all()
