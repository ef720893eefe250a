"""The paper's evaluation protocol: metrics against hand-computed values, alignments, regressors."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from keydiff3d.evaluation.metrics import (
    bone_samples,
    cd_b2b,
    cd_j2b,
    cd_j2j,
    mpjpe,
    n_mpjpe,
    p_mpjpe,
    point_segment_distance,
    procrustes_align,
    scale_align,
)
from keydiff3d.evaluation.regressors import LinearRegressor, MLPRegressor


def test_mpjpe_hand_computed():
    gt = np.zeros((1, 3, 3))
    pred = np.array([[[3.0, 4.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]])  # errors 5, 1, 0
    assert mpjpe(pred, gt) == pytest.approx(2.0)
    assert mpjpe(pred[0], gt[0]) == pytest.approx(2.0)  # a single pose works too


def test_n_mpjpe_removes_scale_only():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(5, 7, 3))
    assert n_mpjpe(2.5 * gt, gt) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(scale_align(0.4 * gt, gt), gt, atol=1e-12)
    # a translation is not removed: N-MPJPE stays positive but never exceeds MPJPE
    shifted = gt + np.array([0.3, 0.0, 0.0])
    assert 0 < n_mpjpe(shifted, gt) <= mpjpe(shifted, gt) + 1e-12


def test_n_mpjpe_hand_computed_scale():
    gt = np.array([[[1.0, 0, 0], [0, 1.0, 0]]])
    pred = np.array([[[2.0, 0, 0], [0, 0, 0]]])  # optimal s = <p,g>/<p,p> = 2/4 = 0.5 -> p' = (1,0,0),(0,0,0)
    assert n_mpjpe(pred, gt) == pytest.approx(0.5)  # errors 0 and 1


def test_procrustes_recovers_known_similarity():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(4, 9, 3))
    R = Rotation.from_euler("xyz", [30, -50, 110], degrees=True).as_matrix()
    pred = 0.7 * gt @ R.T + np.array([0.2, -1.0, 3.0])
    np.testing.assert_allclose(procrustes_align(pred, gt), gt, atol=1e-9)
    assert p_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-9)
    assert mpjpe(pred, gt) > 0.5


def test_procrustes_does_not_mirror():
    rng = np.random.default_rng(2)
    gt = rng.normal(size=(1, 12, 3))
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    assert p_mpjpe(mirrored, gt) > 0.1  # a reflection is not a rotation
    aligned = procrustes_align(mirrored, gt)[0]
    # the alignment is a proper similarity: distances scale uniformly, orientation is kept
    a, b = aligned - aligned.mean(0), mirrored[0] - mirrored[0].mean(0)
    M = np.linalg.lstsq(b, a, rcond=None)[0]
    assert np.linalg.det(M) > 0


def test_p_mpjpe_never_exceeds_n_mpjpe_or_mpjpe():
    rng = np.random.default_rng(3)
    gt = rng.normal(size=(20, 10, 3))
    pred = gt + 0.3 * rng.normal(size=gt.shape)
    assert p_mpjpe(pred, gt) <= n_mpjpe(pred, gt) + 1e-12 <= mpjpe(pred, gt) + 2e-12


def test_point_segment_distance_hand_computed():
    heads, tails = np.array([[0.0, 0, 0]]), np.array([[2.0, 0, 0]])
    points = np.array([[1.0, 1.0, 0], [-3.0, 0, 4.0], [3.0, 0, 0]])
    np.testing.assert_allclose(point_segment_distance(points, heads, tails)[:, 0], [1.0, 5.0, 1.0])


def test_chamfer_metrics_hand_computed():
    a = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    b = np.array([[0.0, 0, 0], [1.0, 0, 0], [0.5, 1.0, 0]])
    # a->b: 0, 0 ; b->a: 0, 0, sqrt(1.25)
    assert cd_j2j(a, b) == pytest.approx(0.5 * (0 + np.sqrt(1.25) / 3))
    bones_a, bones_b = np.array([[0, 1]]), np.array([[0, 1], [1, 2]])
    # a's joints lie on b's bones (0); b's joint 2 is 1.0 from segment a0-a1
    assert cd_j2b(a, bones_a, b, bones_b) == pytest.approx(0.5 * (1.0 / 3))
    assert cd_j2j(b, b) == 0.0 and cd_j2b(b, bones_b, b, bones_b) == 0.0


def test_bone_to_bone_chamfer_sees_a_spurious_long_bone():
    joints = np.array([[0.0, 0, 0], [1.0, 0, 0], [1.0, 1.0, 0]])  # an L
    true_bones, shortcut = np.array([[0, 1], [1, 2]]), np.array([[0, 1], [0, 2]])  # diagonal instead of 1-2
    # every joint lies on the other tree's bones, so CD-J2B cannot tell the trees apart
    assert cd_j2b(joints, shortcut, joints, true_bones) == 0.0
    # CD-B2B: diagonal points (t, t) lie min(t, 1 - t) from the L (mean 1/4, length sqrt 2); the L's
    # vertical points (1, s) lie min(s, (1 - s) / sqrt 2) from the shortcut (mean 0.2071); others 0
    expected = 0.5 * (np.sqrt(2) * 0.25 / (1 + np.sqrt(2)) + 0.2071 / 2)
    assert cd_b2b(joints, shortcut, joints, true_bones, step=1e-3) == pytest.approx(expected, rel=1e-2)
    assert cd_b2b(joints, true_bones, joints, true_bones) == 0.0
    parallel = np.array([[0.0, 1.0, 0], [1.0, 1.0, 0]])
    assert cd_b2b(joints[:2], np.array([[0, 1]]), parallel, np.array([[0, 1]])) == pytest.approx(1.0)
    samples = bone_samples(joints, true_bones, step=0.3)  # 4 gaps of 0.25 <= step per bone, ends included
    assert len(samples) == 10 and np.allclose(samples[[0, 4, 5, 9]], joints[[0, 1, 1, 2]])


def _linear_toy(n: int, seed: int):
    """y = A x + 0.5 with one fixed A (4 keypoints -> 5 joints); `seed` draws the inputs."""
    A = np.random.default_rng(100).normal(size=(4 * 3, 5 * 3))
    x = np.random.default_rng(seed).normal(size=(n, 4, 3))
    y = (x.reshape(n, -1) @ A + 0.5).reshape(n, 5, 3)
    return x, y


def test_linear_regressor_recovers_linear_map():
    x, y = _linear_toy(300, 0)
    xt, yt = _linear_toy(50, 7)  # held-out inputs, same map
    reg = LinearRegressor(ridge=1e-9).fit(x, y)
    assert mpjpe(reg.predict(xt), yt) < 1e-5


def test_mlp_regressor_fits_linear_toy_and_is_deterministic():
    x, y = _linear_toy(400, 1)
    first = MLPRegressor(hidden=64, steps=400, seed=3).fit(x, y)
    baseline = mpjpe(np.broadcast_to(y.mean(0), y.shape), y)
    err = mpjpe(first.predict(x[:100]), y[:100])
    assert err < 0.15 * baseline
    second = MLPRegressor(hidden=64, steps=400, seed=3).fit(x, y)
    np.testing.assert_array_equal(first.predict(x[:5]), second.predict(x[:5]))


def test_regressor_input_checks():
    with pytest.raises(ValueError, match="B, points, 3"):
        LinearRegressor().fit(np.zeros((4, 6)), np.zeros((4, 2, 3)))
    with pytest.raises(RuntimeError, match="fit"):
        LinearRegressor().predict(np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match="must both be"):
        mpjpe(np.zeros((2, 3, 3)), np.zeros((2, 4, 3)))
