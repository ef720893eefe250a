"""Skinning invariants of keydiff3d_addon.rigcore.skinning (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from keydiff3d_addon.rigcore import (
    Bone,
    SkinningError,
    SkinWeights,
    build_skeleton,
    compute_skin_weights,
    segment_distances,
    smooth_over_surface,
    top_k,
)
from keydiff3d_addon.rigcore.skinning import PARAMETER_RANGES


def _chain(n: int = 5):
    keypoints = np.array([[0, 0, i] for i in range(n)], float)
    a = np.zeros((n, n))
    for i in range(n - 1):
        a[i, i + 1] = a[i + 1, i] = 1.0
    return build_skeleton(keypoints, a, root=0)


def _check_invariants(skin: SkinWeights, num_vertices: int, k: int) -> None:
    assert skin.indices.shape == (num_vertices, k) and skin.indices.dtype == np.int32
    assert skin.weights.shape == (num_vertices, k) and skin.weights.dtype == np.float32
    assert np.all(skin.indices >= 0) and np.all(skin.indices < len(skin.bone_names))
    assert np.all(skin.weights >= 0) and np.all(np.isfinite(skin.weights))
    np.testing.assert_allclose(skin.weights.sum(1), 1.0, atol=1e-5)
    assert np.all((skin.weights > 0).sum(1) >= 1)
    dense = skin.dense()
    np.testing.assert_allclose(dense.sum(1), 1.0, atol=1e-5)
    assert np.all((dense > 0).sum(1) <= k)


def test_segment_distances_match_brute_force():
    rng = np.random.default_rng(0)
    v, h, t = rng.normal(size=(200, 3)), rng.normal(size=(7, 3)), rng.normal(size=(7, 3))
    s = np.linspace(0, 1, 4001)[None, :, None]
    for b in range(7):
        samples = h[b] + s[0] * (t[b] - h[b])
        brute = np.linalg.norm(v[:, None] - samples[None], axis=-1).min(1)
        np.testing.assert_allclose(segment_distances(v, h, t)[:, b], brute, atol=1e-3)
    far = segment_distances(v + 1e4, h + 1e4, t + 1e4, np.float32)
    np.testing.assert_allclose(far, segment_distances(v, h, t), atol=1e-3)


@pytest.mark.parametrize("method", ["gaussian", "gaussian_scaled"])
@pytest.mark.parametrize("k", [1, 2, 4])
def test_weights_are_normalised_top_k(method, k):
    rng = np.random.default_rng(1)
    skeleton = _chain(6)
    vertices = rng.normal(size=(3000, 3)) * [0.3, 0.3, 2.0] + [0, 0, 2.5]
    skin = compute_skin_weights(vertices, skeleton, k=k, method=method, sigma=0.1)
    _check_invariants(skin, len(vertices), k)
    assert skin.bone_names == skeleton.bone_names(deform_only=True)


def test_nearest_bone_dominates_mid_bone_and_joints_blend():
    skeleton = _chain(3)  # bones along z: [0,1] and [1,2]
    vertices = np.array([[0.1, 0, 0.5], [0.1, 0, 1.5], [0.1, 0, 1.0]])
    dense = compute_skin_weights(vertices, skeleton, sigma=0.05).dense()
    names = skeleton.bone_names(deform_only=True)
    low = names.index(next(b.name for b in skeleton.bones if b.keypoint == 1))
    assert dense[0, low] > 0.99 and dense[1, 1 - low] > 0.99
    np.testing.assert_allclose(dense[2], [0.5, 0.5], atol=1e-6)


def test_continuous_truncation_reaches_zero_smoothly():
    # three bones; the third-ranked weight goes to 0 exactly when it meets the (k+1)-th
    w = np.array([[1.0, 0.5, 0.2, 0.2], [1.0, 0.5, 0.21, 0.2]])
    idx, wt = top_k(w, 3)
    assert wt[0, 2] == 0.0 and 0 < wt[1, 2] < 0.02
    np.testing.assert_allclose(wt.sum(1), 1.0, atol=1e-6)
    # all tied -> the untruncated top k is kept, nothing is lost
    idx, wt = top_k(np.ones((1, 5)), 4)
    np.testing.assert_allclose(wt, 0.25)


def test_far_vertices_keep_their_nearest_bone():
    skeleton = _chain(4)
    vertices = np.array([[0, 0, 1e4], [1e4, 0, 0.5]])
    skin = compute_skin_weights(vertices, skeleton, sigma=1e-3, relative=False)
    _check_invariants(skin, 2, 4)
    top = skin.indices[np.arange(2), skin.weights.argmax(1)]
    names = skin.bone_names
    assert skeleton.bone(names[top[0]]).keypoint == 3 and skeleton.bone(names[top[1]]).keypoint == 1


def test_fewer_bones_than_k_pads_with_zero_weights():
    skeleton = _chain(2)
    skin = compute_skin_weights(np.random.default_rng(2).normal(size=(50, 3)), skeleton, k=4)
    _check_invariants(skin, 50, 4)
    assert np.all(skin.weights[:, 1:] == 0) and np.all(skin.weights[:, 0] == 1)


def test_scaled_kernel_keeps_a_thick_body_off_a_thin_limb():
    # a thick trunk along z (radius 0.4) with a thin arm (radius 0.05) leaving at the top
    keypoints = np.array([[0, 0, 0], [0, 0, 2], [1.5, 0, 2.0]])
    a = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0.0]])
    skeleton = build_skeleton(keypoints, a, root=0)
    rng = np.random.default_rng(3)
    z = rng.uniform(0, 2, 4000)
    phi = rng.uniform(0, 2 * np.pi, 4000)
    trunk = np.stack([0.4 * np.cos(phi), 0.4 * np.sin(phi), z], 1)
    x = rng.uniform(0.4, 1.5, 1000)
    arm = np.stack([x, 0.05 * np.cos(phi[:1000]), 2 + 0.05 * np.sin(phi[:1000])], 1)
    vertices = np.concatenate([trunk, arm])
    arm_bone = skeleton.bone_names(deform_only=True).index(next(b.name for b in skeleton.bones if b.keypoint == 2))
    near_top = (np.arange(len(vertices)) < 4000) & (vertices[:, 2] > 1.7) & (vertices[:, 0] > 0.2)
    plain = compute_skin_weights(vertices, skeleton, method="gaussian", sigma=0.1).dense()
    scaled = compute_skin_weights(vertices, skeleton, method="gaussian_scaled").dense()
    assert scaled[near_top, arm_bone].mean() < 0.5 * plain[near_top, arm_bone].mean()
    assert scaled[4000:][x > 0.8, arm_bone].min() > 0.99  # the arm itself stays on the arm


def test_surface_smoothing_averages_neighbours_and_keeps_rows():
    values = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.5, 0.5]], np.float32)
    faces = np.array([[0, 1, 2]])
    out = smooth_over_surface(values, faces, iterations=50, step=0.5)
    np.testing.assert_allclose(out[:3], np.tile(out[:1], (3, 1)), atol=1e-4)  # connected part converges
    np.testing.assert_allclose(out[3], values[3])  # an isolated vertex keeps its values
    np.testing.assert_allclose(out.sum(1), 1.0, atol=1e-5)
    rng = np.random.default_rng(4)
    skin = compute_skin_weights(
        rng.normal(size=(30, 3)),
        _chain(4),
        method="gaussian_scaled",
        faces=rng.integers(0, 30, (40, 3)),
        smooth_iterations=5,
    )
    _check_invariants(skin, 30, 4)


def test_dense_round_trip_and_from_dense():
    rng = np.random.default_rng(5)
    dense = rng.random((100, 7))
    skin = SkinWeights.from_dense(dense, [f"b{i}" for i in range(7)], k=3)
    _check_invariants(skin, 100, 3)
    top3 = np.sort(dense, 1)[:, -3:]
    np.testing.assert_allclose(np.sort(skin.dense(), 1)[:, -3:], top3 / top3.sum(1, keepdims=True), rtol=1e-5)


@pytest.mark.parametrize(
    "vertices,kwargs,message",
    [
        (np.zeros((0, 3)), {}, "no vertices"),
        (np.array([[0, 0, np.nan]]), {}, "NaN"),
        (np.zeros((3, 3)), {"k": 5}, "between 1 and 4"),
        (np.zeros((3, 3)), {"method": "envelope"}, "unknown skinning method"),
        (np.zeros((3, 3)), {"method": "heat"}, "needs the mesh's triangles"),
        (np.zeros((3, 3)), {"method": "heat", "faces": [[0, 1, 7]]}, "vertex indices"),
        (np.zeros((3, 3)), {"sigma": 0.0}, "sigma must be between 0.0001 and 1"),
        (np.zeros((3, 3)), {"sigma": 0.0, "relative": False}, "sigma must be positive"),
    ],
)
def test_bad_skinning_input_raises(vertices, kwargs, message):
    with pytest.raises(SkinningError, match=message):
        compute_skin_weights(vertices, _chain(3), **kwargs)


@pytest.mark.parametrize("name", sorted(PARAMETER_RANGES))
def test_every_bounded_parameter_is_refused_outside_its_range(name):
    low, high = PARAMETER_RANGES[name]
    vertices = np.array([[0.1, 0.0, 0.5], [0.0, 0.2, 1.5], [0.1, 0.1, 2.5]])
    faces = [[0, 1, 2]]
    for value in (low, high):  # the ends of the range are valid
        compute_skin_weights(vertices, _chain(3), method="gaussian_scaled", faces=faces, **{name: value})
    for value in (low - 1e-9 if isinstance(low, float) else low - 1, high * 1.01 + 1, float("nan")):
        with pytest.raises(SkinningError, match=f"{name} must be .*between {low:g} and {high:g}"):
            compute_skin_weights(vertices, _chain(3), method="gaussian_scaled", faces=faces, **{name: value})


def test_an_absolute_sigma_may_exceed_the_relative_range():
    skin = compute_skin_weights(np.zeros((3, 3)), _chain(3), sigma=5.0, relative=False)
    assert skin.params["sigma_world"] == 5.0


def test_no_deform_bones_raises():
    bone = Bone("root", np.zeros(3), np.ones(3), None, -1, deform=False, kind="root")
    with pytest.raises(SkinningError, match="no deform bones"):
        compute_skin_weights(np.zeros((3, 3)), [bone])


def test_progress_is_reported_and_can_cancel():
    from keydiff3d.errors import Cancelled
    from keydiff3d.progress import Progress

    seen = []
    progress = Progress(lambda stage, f, msg: seen.append(f))
    compute_skin_weights(np.random.default_rng(6).normal(size=(20000, 3)), _chain(4), progress=progress, chunk=4096)
    assert len(seen) >= 5 and seen[-1] == pytest.approx(1.0) and seen == sorted(seen)
    progress.cancel()
    with pytest.raises(Cancelled):
        compute_skin_weights(np.zeros((10, 3)), _chain(4), progress=progress)
