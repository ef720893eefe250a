"""The curve skeleton of a voxelised interior (keydiff3d.rigging.curve_skeleton) and its mirror
symmetry found on the rest surface (keydiff3d.rigging.symmetry), on a toy creature."""

from __future__ import annotations

import numpy as np
import pytest
from rig_support import FEET, toy_quadruped, turn

from keydiff3d.errors import InputError
from keydiff3d.evaluation.rig_quality import Bones, bone_scores, mesh_inside
from keydiff3d.rigging.curve_skeleton import (
    CurveSkeletonOptions,
    curve_skeleton,
    medial_tree,
    place_joints,
    voxelise,
)
from keydiff3d.rigging.symmetry import mirror_skeleton, surface_mirror


@pytest.fixture(scope="module")
def toy():
    return toy_quadruped()


def _bones(skeleton) -> Bones:
    e = skeleton.edges
    child_bone = {int(c): b for b, (_, c) in enumerate(e)}
    return Bones(
        skeleton.joints[e[:, 0]],
        skeleton.joints[e[:, 1]],
        np.array([child_bone.get(int(p), -1) for p in e[:, 0]]),
        [f"b{i}" for i in range(len(e))],
    )


def test_voxelise_fills_the_interior_of_a_box():
    import trimesh

    box = trimesh.creation.box([1.0, 0.5, 0.25])
    grid = voxelise(box.vertices, box.faces, resolution=40)
    volume = grid.inside.sum() * grid.pitch**3
    assert volume == pytest.approx(0.125, rel=0.12)
    assert grid.depth.max() == pytest.approx(0.125, abs=1.5 * grid.pitch)  # half the thinnest side
    assert grid.contains(np.zeros((1, 3)))[0] and not grid.contains(np.array([[0.0, 0.0, 0.2]]))[0]


def test_a_flat_sheet_encloses_nothing():
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0.5, 0.5, 0]], float)
    f = np.array([[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]])
    with pytest.raises(InputError, match="encloses no volume"):
        curve_skeleton(v, f)


def test_baseline_has_joints_at_branches_ends_and_bends_only(toy):
    skeleton = curve_skeleton(*toy, CurveSkeletonOptions.baseline())
    kinds = skeleton.kinds
    assert kinds.count("end") == 6  # four feet, the head, the tail
    assert set(kinds) <= {"branch", "end", "bend"}
    assert all(p < i for i, p in enumerate(skeleton.parents) if p >= 0) and skeleton.parents[0] == -1
    assert bone_scores(_bones(skeleton), mesh_inside(*toy), 1.5)["inside_fraction"] > 0.97


def test_refinements_reach_the_surface_and_keep_bones_short(toy):
    v, f = toy
    size = float(np.ptp(v, axis=0).max())
    base = curve_skeleton(v, f, CurveSkeletonOptions.baseline())
    refined = curve_skeleton(v, f, CurveSkeletonOptions(max_bone=0.15))

    def ends(s):
        return s.joints[[i for i, k in enumerate(s.kinds) if k == "end"]]

    # the leaf ends continue to just inside the surface: the feet come down to the ground
    assert np.sort(ends(refined)[:, 2])[:4].max() < np.sort(ends(base)[:, 2])[:4].max() - 0.02
    feet = ends(refined)[np.argsort(ends(refined)[:, 2])[:4]]
    assert np.linalg.norm(feet[:, None, :2] - FEET[None, :, :2], axis=-1).min(1).max() < 0.03
    lengths = np.linalg.norm(refined.joints[refined.edges[:, 0]] - refined.joints[refined.edges[:, 1]], axis=1)
    assert lengths.max() <= 0.15 * size * 1.05
    assert {"split", "limb"} <= set(refined.kinds)
    assert bone_scores(_bones(refined), mesh_inside(v, f), size)["inside_fraction"] > 0.97


def test_anchors_become_joints_on_the_medial_curves(toy):
    v, f = toy
    tree = medial_tree(v, f)
    knee = np.array([[0.3, 0.1, 0.27]])
    skeleton = place_joints(tree, CurveSkeletonOptions(max_bone=0.0, limb_root=0.0), anchors=knee + [0.03, 0.0, 0.0])
    anchored = skeleton.joints[[i for i, k in enumerate(skeleton.kinds) if k == "anchor"]]
    assert len(anchored) == 1 and np.linalg.norm(anchored[0] - knee[0]) < 0.03


def test_surface_mirror_finds_the_plane_of_a_turned_creature():
    v, f = toy_quadruped(yaw_deg=30.0)
    plane = surface_mirror(v, f)
    expected = turn(np.array([[0.0, 1.0, 0.0]]), 30.0)[0]
    assert abs(abs(plane.normal @ expected) - 1.0) < 1e-3 and plane.asymmetry < 0.002
    lopsided = surface_mirror(*toy_quadruped(extra=[((0.0, 0.1, 0.55), (0.2, 0.55, 0.75), 0.09)]))
    assert lopsided.asymmetry > 0.01


def test_mirror_skeleton_makes_left_and_right_mirror_images(toy):
    v, f = toy
    plane = surface_mirror(v, f)
    skeleton = mirror_skeleton(curve_skeleton(v, f), plane)
    sided = np.flatnonzero(skeleton.side != 0)
    assert len(sided) and (skeleton.side[skeleton.mirror[sided]] == -skeleton.side[sided]).all()
    np.testing.assert_allclose(
        plane.reflect(skeleton.joints[sided]), skeleton.joints[skeleton.mirror[sided]], atol=1e-9
    )
    centre = np.flatnonzero(skeleton.side == 0)
    np.testing.assert_allclose(plane.signed_distance(skeleton.joints[centre]), 0.0, atol=1e-9)
    ends = [i for i, k in enumerate(skeleton.kinds) if k in ("end", "mirror") and not (skeleton.parents == i).any()]
    assert sorted(int(skeleton.side[i]) for i in ends) == [-1, -1, 0, 0, 1, 1]  # four feet in pairs, head and tail
    assert all(p < i for i, p in enumerate(skeleton.parents) if p >= 0)


def test_a_limb_the_thinning_missed_on_one_side_is_mirrored_in():
    v, f = toy_quadruped()
    plane = surface_mirror(v, f)
    skeleton = curve_skeleton(v, f)
    # drop one hind leg's joints from the skeleton: its mirror image lies inside the body, so it comes back
    leaves = [i for i in range(len(skeleton.joints)) if not (skeleton.parents == i).any()]
    foot = min(leaves, key=lambda i: np.linalg.norm(skeleton.joints[i] - FEET[0]))
    chain = [foot]
    while (skeleton.parents == skeleton.parents[chain[-1]]).sum() == 1:
        chain.append(int(skeleton.parents[chain[-1]]))
    keep = np.setdiff1d(np.arange(len(skeleton.joints)), chain)
    index = -np.ones(len(skeleton.joints), np.int64)
    index[keep] = np.arange(len(keep))
    from keydiff3d.rigging.curve_skeleton import CurveSkeleton

    pruned = CurveSkeleton(
        skeleton.joints[keep],
        np.where(skeleton.parents[keep] >= 0, index[skeleton.parents[keep]], -1),
        skeleton.radius[keep],
        [skeleton.kinds[i] for i in keep],
        [skeleton.paths[i] for i in keep],
        skeleton.size,
        skeleton.grid,
    )
    mirrored = mirror_skeleton(pruned, plane)
    feet = mirrored.joints[
        [i for i in range(len(mirrored.joints)) if not (mirrored.parents == i).any() and mirrored.joints[i, 2] < 0.1]
    ]
    assert len(feet) == 4
    assert np.linalg.norm(feet[:, None, :2] - FEET[None, :, :2], axis=-1).min(0).max() < 0.04
