"""The skeleton benchmark's scoring on a handcrafted fixture (no model, no data set)."""

import numpy as np
import pytest

from keydiff3d.bench import _load
from keydiff3d.evaluation.protocol import Predictions

bench = _load("skeleton")

# a "C": 0-1-2 along x, 2-3-4 along y; unit bones; the learned adjacency likes the chain (0.5) but
# likes the cross edge 0-4 (length 2 sqrt 2 = 1.41 x extent) more (1.0)
C_JOINTS = np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [2, 1, 0], [2, 2, 0]])
C_BONES = np.array([[0, 1], [1, 2], [2, 3], [3, 4]])


def _fixture() -> Predictions:
    a = np.zeros((5, 5))
    for i, j in C_BONES:
        a[i, j] = a[j, i] = 0.5
    a[0, 4] = a[4, 0] = 1.0
    keypoints = np.stack([C_JOINTS, 0.5 * C_JOINTS])  # keypoints on the true joints; the second creature is half size
    return Predictions(
        keypoints=keypoints,
        joints=[C_JOINTS, 0.5 * C_JOINTS],
        bones=[C_BONES, C_BONES],
        categories=np.array(["quadruped", "biped"]),
        adjacency=a,
    )


def test_scores_prefer_the_tree_that_follows_the_true_skeleton():
    # edge scores / max(a): cross 1 - 1.41 w, chain 0.5 - 0.5 w -> the cross edge stays while w < 0.55
    trees = bench.trees_for([0.0, 1.0])
    scores = bench.score_split(_fixture(), [lambda p: np.ones(len(p), bool)] * 2, trees)
    assert [t.label for t in trees] == [
        "learned, w=0",
        "learned, w=1",
        "euclidean",
        "learned, w=0 + volume 1",
        "learned, w=1 + volume 1",
        "euclidean + volume 1",
    ]
    truth = scores.items[bench.GROUND_TRUTH]
    assert truth["cd_b2b"].tolist() == [0.0, 0.0] and truth["mean_bone"].tolist() == [1.0, 0.5]
    for label in ("learned, w=1", "euclidean", "learned, w=1 + volume 1"):
        s = scores.items[label]
        assert s["cd_j2b"].max() == pytest.approx(0.0, abs=1e-9) and s["cd_b2b"].max() == pytest.approx(0.0, abs=1e-9)
        assert s["long_bones"].tolist() == [0.0, 0.0] and s["max_bone"].tolist() == pytest.approx([1.0, 0.5])
    learned = scores.items["learned, w=0 + volume 1"]
    assert (learned["cd_b2b"] > 10).all()  # milli-extent: the diagonal strays from the C
    assert learned["max_bone"].tolist() == pytest.approx([2 * np.sqrt(2), np.sqrt(2)])
    assert learned["long_bones"].tolist() == [0.25, 0.25]  # one bone of four is longer than any true bone
    assert scores.mean("learned, w=0", "cd_j2j") == scores.mean("euclidean", "cd_j2j") == 0.0  # tree independent
    assert scores.mean("learned, w=0", "max_bone", "biped") == pytest.approx(np.sqrt(2))
    change, error = scores.change("learned, w=1 + volume 1", bench.BASELINE, "cd_b2b")
    assert change == pytest.approx(-learned["cd_b2b"].mean()) and error >= 0
    assert bench.choose_weight(scores, [0.0, 1.0]) == 1.0
    summary = scores.to_dict()
    assert summary["counts"] == {"biped": 1, "quadruped": 1, "all": 2}
    assert summary["means"]["learned, w=0"]["all"]["max_bone"] == pytest.approx(1.5 * np.sqrt(2))


def test_volume_penalty_uses_the_inside_test():
    # the cross edge 0-4 leaves the volume (a band around the C), so the volume trees drop it even at w=0
    def band(points):
        p = np.asarray(points)
        return ((np.abs(p[:, 1]) < 0.1) & (p[:, 0] < 2.1)) | (np.abs(p[:, 0] - 2) < 0.1)

    prediction = _fixture()
    prediction.keypoints, prediction.joints = prediction.keypoints[:1], prediction.joints[:1]
    prediction.bones, prediction.categories = prediction.bones[:1], prediction.categories[:1]
    scores = bench.score_split(prediction, [band], bench.trees_for([0.0]))
    assert scores.mean("learned, w=0", "long_bones") == 0.25
    assert scores.mean("learned, w=0 + volume 1", "long_bones") == 0.0


def test_volume_sweep_trees_and_choice():
    # 3 of the cross edge 0-4's 8 samples (0.67 < x < 1.2) lie outside: at w=0 its score 1 - 0.375 v beats
    # the chain's 0.5 while v < 1.33, so v=1 keeps it and v=2 drops it
    trees = bench.trees_for([0.0], [0.0, 1.0, 2.0])
    assert [t.label for t in trees] == [
        "learned, w=0",
        "euclidean",
        "learned, w=0 + volume 1",
        "euclidean + volume 1",
        "learned, w=0 + volume 2",
    ]

    def c_band(points):
        p = np.asarray(points)
        return ((np.abs(p[:, 1]) < 0.1) & (p[:, 0] < 2.1)) | (np.abs(p[:, 0] - 2) < 0.1)

    def inside(points):  # the C, and everything left of x=0.6 or right of x=1.2
        p = np.asarray(points)
        return c_band(p) | (p[:, 0] < 0.6) | (p[:, 0] > 1.2)

    prediction = _fixture()
    prediction.keypoints, prediction.joints = prediction.keypoints[:1], prediction.joints[:1]
    prediction.bones, prediction.categories = prediction.bones[:1], prediction.categories[:1]
    scores = bench.score_split(prediction, [inside], trees)
    assert scores.mean("learned, w=0", "long_bones") == scores.mean("learned, w=0 + volume 1", "long_bones") == 0.25
    assert scores.mean("learned, w=0 + volume 2", "long_bones") == 0.0
    assert scores.mean("learned, w=0 + volume 2", "cd_b2b") == pytest.approx(0.0, abs=1e-9)
    assert bench.choose_volume_weight(scores, [0.0, 1.0, 2.0]) == 2.0
    assert bench.choose_weight(scores, [0.0]) == 0.0


def _row(**values) -> dict:
    base = {
        "cd_j2j_ratio": 0.5,
        "cd_j2b_ratio": 0.4,
        "cd_b2b_ratio": 0.4,
        "inside_fraction": 0.97,
        "long_bones": 0,
        "bones": 20,
        "animation_fit": 0.002,
        "posability": 0.001,
        "sided_fraction": 0.5,
    }
    return {**base, **values}


def _per_asset(refined_fit: float, refined_b2b: float, long_bones: int = 0) -> dict:
    creature = {
        "_bilateral": True,
        "_preset": "generic",
        "artist": {"artist": _row(animation_fit=0.001, posability=0.001), "_seconds": 0.0},
        "curve baseline": {
            "bone heat": _row(animation_fit=0.003, cd_j2j_ratio=0.62, cd_b2b_ratio=0.43),
            "_seconds": 0.0,
        },
        "refined": {
            "preset": _row(animation_fit=refined_fit, cd_b2b_ratio=refined_b2b, long_bones=long_bones),
            "_seconds": 0.0,
        },
    }
    return {"A": creature, "B": creature}


def test_real_targets_follow_the_issue():
    met = {t: m for t, _, _, m in bench.real_targets(_per_asset(0.0019, 0.42), "refined", "preset")}
    assert all(met.values()), met
    failed = {t: m for t, _, _, m in bench.real_targets(_per_asset(0.0025, 0.44, long_bones=1), "refined", "preset")}
    assert not failed["animation fit / artist's"] and failed["animation fit / curve baseline's"]
    assert not failed["CD-B2B / baseline"]  # 0.44 <= 0.45 but above the geometric baseline's 0.43
    assert not failed["bones longer than half the creature (most on one creature)"]


@pytest.mark.bpy
@pytest.mark.slow
def test_real_part_scores_every_rig_of_a_creature(tmp_path):
    import argparse

    from bpy_fixtures import bpy  # noqa: F401

    from keydiff3d.paths import RIGGED_ASSETS_DIR

    rigs = [r for r in bench.real_rigs() if r.label in ("refined (curve only)", "curve baseline", "artist")]
    args = argparse.Namespace(frames=2, asset_cache=tmp_path, checkpoint=None)
    results = bench.score_real_asset(RIGGED_ASSETS_DIR / "Shark.glb", "fish", rigs, args, tmp_path)
    assert results["_bilateral"] and results["_preset"] == "generic"
    assert set(results["artist"]) == {"artist", "bone heat", "_seconds"}
    assert results["artist"]["artist"]["cd_b2b"] == pytest.approx(0.0, abs=1e-9)
    refined = results["refined (curve only)"]["preset"]
    assert refined["inside_fraction"] > 0.95 and refined["long_bones"] == 0 and refined["sided_fraction"] > 0
    assert refined["cd_b2b_ratio"] < 1.0 and 0 < refined["animation_fit"] < 0.01
    assert (tmp_path / "Shark.png").is_file()


def test_a_designed_setting_changes_only_on_a_clear_gain():
    def variant(shift):
        ratios = np.linspace(0.4, 0.6, 20) + shift
        return {"cd_j2j_ratio": ratios, "cd_b2b_ratio": np.full(20, 0.2), "bones": np.full(20, 30)}

    noise = np.tile([0.01, -0.01], 10)
    curves = {
        "refined (fused)": variant(0.0),
        "fused, no mirror": variant(-0.05),
        "fused, no max bone": variant(0.02),
        "refined (curve only)": variant(noise),
    }
    choices = bench.curve_choices(curves)
    assert choices["fused, no mirror"][2] is False  # 0.05 lower, no spread: off is better
    assert choices["fused, no max bone"][2] is True
    change, error, stays = choices["refined (curve only)"]
    assert change == pytest.approx(0.0) and error > 0 and stays  # a tie keeps the design
