"""The protocol on hand-made predictions: known regressors, known baselines, known skeleton metrics."""

import numpy as np
import pytest

from keydiff3d.evaluation.protocol import UNIT_SCALE, Predictions, evaluate_predictions, score_poses, score_skeletons
from keydiff3d.geometry import orbit_cameras
from keydiff3d.training.preview import PreviewItem, draw_preview, learned_bones

CHAIN = np.array([[0, 1], [1, 2], [2, 3]])  # a 4-joint chain "category"
STAR = np.array([[0, 1], [0, 2]])  # a 3-joint star "category"


def _predictions(keypoints, joints, bones, categories, adjacency):
    return Predictions(
        np.asarray(keypoints, float),
        [np.asarray(j, float) for j in joints],
        [np.asarray(b) for b in bones],
        np.array(categories),
        np.asarray(adjacency, float),
    )


def _world(rng, n, J):
    return rng.normal(scale=0.2, size=(n, J, 3))


def test_keypoints_equal_to_joints_score_zero_and_gt_tree_is_recovered():
    rng = np.random.default_rng(0)
    joints = _world(rng, 40, 4)
    adjacency = np.zeros((4, 4))
    adjacency[CHAIN[:, 0], CHAIN[:, 1]] = adjacency[CHAIN[:, 1], CHAIN[:, 0]] = 1.0
    train = _predictions(joints[:30], joints[:30], [CHAIN] * 30, ["chain"] * 30, adjacency)
    test = _predictions(joints[30:], joints[30:], [CHAIN] * 10, ["chain"] * 10, adjacency)
    report = evaluate_predictions(train, test, regressors=("linear",))  # the MLP is tested in test_evaluation_metrics
    assert report.poses["linear"]["all"].count == 10 and report.num_test == 10
    # the identity map is linear: only the small ridge shrinkage remains
    assert report.poses["linear"]["all"].mpjpe < 0.01 * report.poses["mean_pose"]["all"].mpjpe
    assert report.skeleton["all"] == pytest.approx({"cd_j2j": 0.0, "cd_j2b": 0.0}, abs=1e-9)
    assert sorted(map(tuple, np.sort(learned_bones(joints[0], adjacency), axis=1))) == [(0, 1), (1, 2), (2, 3)]


def test_mean_pose_baseline_and_units_hand_computed():
    base = np.array([[0.0, 0, 0], [0.1, 0, 0], [0.2, 0, 0]])
    d = np.array([0.0, 0.0, 0.1])
    train_joints = [base, base + 2 * d]  # mean pose = base + d
    test_joints = [base + d + np.array([0.03, 0.04, 0.0])]  # every joint 0.05 from the mean pose
    keypoints = np.zeros((1, 2, 3))
    train = _predictions(np.zeros((2, 2, 3)), train_joints, [STAR] * 2, ["star"] * 2, np.ones((2, 2)))
    test = _predictions(keypoints, test_joints, [STAR], ["star"], np.ones((2, 2)))
    scores = score_poses(train, test, regressors=("linear",))
    assert scores["mean_pose"]["star"].mpjpe == pytest.approx(50.0)  # 0.05 world units = 50 milli-extent
    assert scores["mean_pose"]["all"].mpjpe == pytest.approx(50.0)
    # a pure translation is removed by Procrustes
    assert scores["mean_pose"]["star"].p_mpjpe == pytest.approx(0.0, abs=1e-9)


def test_all_pools_joints_over_categories_of_different_sizes():
    rng = np.random.default_rng(1)
    chain, star = _world(rng, 12, 4), _world(rng, 12, 3)
    kp = np.concatenate([chain[:, :3], star])  # 3 keypoints per creature
    cats = ["chain"] * 12 + ["star"] * 12
    joints = list(chain) + list(star)
    bones = [CHAIN] * 12 + [STAR] * 12
    train = _predictions(kp[::2], joints[::2], bones[::2], cats[::2], np.ones((3, 3)))
    test = _predictions(kp[1::2], joints[1::2], bones[1::2], cats[1::2], np.ones((3, 3)))
    scores = score_poses(train, test, regressors=("linear",))
    per = scores["mean_pose"]
    # 6 chain poses x 4 joints and 6 star poses x 3 joints: the pooled mean weights joints equally
    expected = (per["chain"].mpjpe * 24 + per["star"].mpjpe * 18) / 42
    assert per["all"].mpjpe == pytest.approx(expected)
    assert per["all"].count == 12


def test_skeleton_metrics_hand_computed():
    keypoints = np.array([[[0.0, 0, 0], [0.1, 0, 0]]])
    joints = [np.array([[0.0, 0, 0], [0.1, 0, 0], [0.05, 0.1, 0]])]
    test = _predictions(keypoints, joints, [STAR], ["star"], np.ones((2, 2)))
    skeleton = score_skeletons(test)
    # CD-J2J: keypoints->joints 0; joints->keypoints: 0, 0, sqrt(0.05^2 + 0.1^2); averaged halves
    assert skeleton["star"]["cd_j2j"] == pytest.approx(UNIT_SCALE * 0.5 * np.hypot(0.05, 0.1) / 3)
    # CD-J2B: keypoints to GT bones 0; GT joint 2 lies 0.1 from the learned bone
    assert skeleton["all"]["cd_j2b"] == pytest.approx(UNIT_SCALE * 0.5 * 0.1 / 3)


def test_preview_draws_a_png(tmp_path):
    cams = orbit_cameras(size=32).subset([20, 5])
    images = np.ones((2, 32, 32, 3))
    keypoints = np.array([[0.0, 0, 0], [0.2, 0, 0.1], [0.0, 0.2, -0.1]])
    item = PreviewItem(images, cams, keypoints, np.array([[0, 1], [0, 2]]), keypoints, np.array([[0, 1], [1, 2]]), "t")
    path = draw_preview([item, item], tmp_path / "p.png")
    from PIL import Image

    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] > 100 and (pixels < 200).any()  # something was drawn over the white views
