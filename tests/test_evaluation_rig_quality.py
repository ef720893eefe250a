"""Rig measures on artist-rigged creatures (keydiff3d.evaluation.rig_quality)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from keydiff3d.evaluation import rig_quality as rq
from keydiff3d.rigging.symmetry import MirrorPlane


def _reference(joints, edges) -> rq.ArtistSkeleton:
    joints, edges = np.asarray(joints, float), np.asarray(edges, np.int64)
    bones = rq.Bones(
        joints[edges[:, 0]], joints[edges[:, 1]], np.full(len(edges), -1), [f"b{i}" for i in range(len(edges))]
    )
    return rq.ArtistSkeleton(bones, np.arange(len(edges)), joints, edges)


SURFACE = trimesh.creation.box([2.0, 0.4, 0.4]).sample(2000, seed=0)
CHAIN = np.array([[-1.0, 0, 0], [-0.5, 0, 0], [0, 0, 0], [0.5, 0, 0], [1.0, 0, 0]])
CHAIN_EDGES = np.array([[0, 1], [1, 2], [2, 3], [3, 4]])


def test_the_reference_itself_scores_zero_and_the_baselines_do_not():
    scores = rq.structure_scores(CHAIN, CHAIN_EDGES, _reference(CHAIN, CHAIN_EDGES), SURFACE, 2.0)
    assert scores["cd_j2j"] == scores["cd_j2b"] == scores["cd_b2b"] == 0.0
    assert min(scores["cd_j2j_baseline"], scores["cd_j2b_baseline"], scores["cd_b2b_baseline"]) > 20.0  # milli-size
    assert scores["cd_b2b_ratio"] == 0.0
    # the baseline uses the artist's joint count, so it does not change with the rig's own joints
    fewer = rq.structure_scores(CHAIN[[0, 4]], np.array([[0, 1]]), _reference(CHAIN, CHAIN_EDGES), SURFACE, 2.0)
    assert fewer["cd_b2b_baseline"] == scores["cd_b2b_baseline"] and fewer["cd_b2b"] == pytest.approx(0.0, abs=1e-9)
    assert fewer["cd_j2j"] > 0


def test_farthest_points_spread_over_the_surface():
    chosen = SURFACE[rq.farthest_points(SURFACE, 5)]
    assert np.ptp(chosen[:, 0]) > 1.8  # both ends of the 2-long box
    assert len(rq.euclidean_tree(chosen)) == 4


def test_bone_scores_measure_length_inside_and_long_bones():
    box = trimesh.creation.box([2.0, 0.4, 0.4])
    inside = rq.mesh_inside(box.vertices, box.faces)
    bones = rq.Bones(
        np.array([[0.0, 0, 0], [0.5, 0, 0]]), np.array([[0.5, 0, 0], [1.5, 0, 0]]), np.array([-1, 0]), ["a", "b"]
    )
    scores = rq.bone_scores(bones, inside, 2.0)
    assert scores["inside_fraction"] == pytest.approx(1.0 - 0.5 / 1.5, abs=0.01)  # half of the 1-long bone is outside
    assert scores["long_bones"] == 0 and scores["max_bone"] == pytest.approx(0.5)
    assert rq.bone_scores(bones, inside, 1.5)["long_bones"] == 1


def test_side_names_and_their_mirror():
    assert [rq.side_of(n) for n in ("leg_01.L", "FrontLeg.L.001", "Bone.001", "LeftArm", "tail", "Wing_R")] == [
        "L",
        "L",
        "",
        "L",
        "",
        "R",
    ]
    assert (
        rq.mirror_name("leg1_02.L") == "leg1_02.R"
        and rq.mirror_name("LeftArm") == "RightArm"
        and rq.mirror_name("tail") == "tail"
    )
    plane = MirrorPlane(np.array([0.0, 1.0, 0.0]), np.zeros(3), 0.0)
    heads = np.array([[0.0, 0.2, 0.0], [0.0, -0.2, 0.0], [0.0, 0.0, 0.0]])
    tails = heads + [0.0, 0.0, -0.5]
    bones = rq.Bones(heads, tails, np.array([2, 2, -1]), ["leg.L", "leg.R", "spine"])
    assert rq.name_scores(bones, plane, 1.0) == {"sided_fraction": pytest.approx(2 / 3), "mirrored_fraction": 1.0}
    bones.heads[1, 2] += 0.2  # the right leg no longer mirrors the left
    assert rq.name_scores(bones, plane, 1.0)["mirrored_fraction"] == 0.0


def test_bones_graph_welds_shared_ends():
    bones = rq.Bones(CHAIN[:-1], CHAIN[1:], np.array([-1, 0, 1, 2]), list("abcd"))
    joints, edges = bones.graph(1e-6)
    assert len(joints) == 5 and len(edges) == 4


@pytest.mark.bpy
def test_artist_skeleton_and_deformation_of_a_real_creature():
    from bpy_fixtures import bpy  # noqa: F401

    from keydiff3d.evaluation.rigged_assets import load_rigged_asset
    from keydiff3d.paths import RIGGED_ASSETS_DIR
    from keydiff3d.rigging.symmetry import surface_mirror

    asset = load_rigged_asset(RIGGED_ASSETS_DIR / "Cat.glb", max_frames_per_clip=3)
    reference = rq.artist_skeleton(asset)
    assert len(reference.columns) == int(asset.deforming.sum()) == len(reference.bones.names)
    assert len(reference.joints) >= len(reference.columns) and reference.edges.max() < len(reference.joints)
    size = float(np.ptp(asset.vertices, axis=0).max())
    assert rq.bilateral_pairs(reference, surface_mirror(asset.vertices, asset.faces), size) >= 8  # four legs in pairs
    scores = rq.deformation_scores(asset, asset.weights[:, reference.columns], reference.bones)
    assert 0 < scores["animation_fit"] < 0.003 and scores["posability"] < 0.005
    rigid = np.zeros_like(asset.weights[:, reference.columns])
    rigid[:, 0] = 1.0  # everything on one bone: the clips cannot be followed
    assert rq.deformation_scores(asset, rigid, reference.bones)["animation_fit"] > 3 * scores["animation_fit"]
