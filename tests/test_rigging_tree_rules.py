"""The skeleton keeps what it is given: priors break near-ties only (prior_margin), changes are
recorded, given keypoints stay unless asked, tip bones stay inside the mesh and above the ground,
and one bone parents the whole rig."""

from __future__ import annotations

import numpy as np
import pytest
from test_rigging_heat import tube

from keydiff3d_addon.rigcore import build_skeleton, edge_penalty, maximum_spanning_tree

ARM = np.array([[0.0, 0.0, 1.0], [0.5, 0.0, 1.0], [1.0, 0.0, 0.6]])  # shoulder, elbow, hand


def _near_segments(segments, radius=0.1):
    def inside(points):
        p = np.asarray(points, float)
        close = np.zeros(len(p), bool)
        for a, b in segments:
            a, b = np.asarray(a, float), np.asarray(b, float)
            t = np.clip(((p - a) @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
            close |= np.linalg.norm(p - (a + t[:, None] * (b - a)), axis=1) < radius
        return close

    return inside


def _given(n, edges, weak=0.03):
    a = np.full((n, n), weak)
    np.fill_diagonal(a, 0)
    for i, j in edges:
        a[i, j] = a[j, i] = 1.0
    return a


def test_a_strong_given_edge_survives_the_volume_prior():
    inside = _near_segments([(ARM[0], ARM[1]), (ARM[0], ARM[2])])  # the forearm 1-2 leaves this "mesh"
    a = _given(3, [(0, 1), (1, 2)])
    unbounded = build_skeleton(ARM, a, root=0, inside=inside, volume_weight=20.0)
    assert {frozenset(e) for e in unbounded.edges()} == {
        frozenset((0, 1)),
        frozenset((0, 2)),
    }  # the hand on the shoulder
    kept = build_skeleton(ARM, a, root=0, inside=inside, volume_weight=20.0, prior_margin=0.1)
    assert {frozenset(e) for e in kept.edges()} == {frozenset((0, 1)), frozenset((1, 2))}
    assert kept.decisions["prior_changes"] == []
    changes = unbounded.decisions["prior_changes"]
    assert {(tuple(c["edge"]), c["change"]) for c in changes} == {((0, 2), "added"), ((1, 2), "removed")}
    removed = next(c for c in changes if c["change"] == "removed")
    assert removed["adjacency"] == 1.0 and removed["penalty"] > 1.0


def test_priors_break_a_near_tie_and_record_it():
    keypoints = np.array([[0.0, 0, 0], [1.0, 0, 0], [0.5, 0.8, 0]])
    a = np.array([[0, 1.0, 0.50], [1.0, 0, 0.48], [0.50, 0.48, 0]])  # 2 hangs on 0 (0.50) or 1 (0.48)
    inside = _near_segments([(keypoints[0], keypoints[1]), (keypoints[1], keypoints[2])])
    skeleton = build_skeleton(keypoints, a, root=0, inside=inside, prior_margin=0.1)
    assert frozenset((1, 2)) in {frozenset(e) for e in skeleton.edges()}  # the prior decided the near-tie
    assert [(c["edge"], c["change"]) for c in skeleton.decisions["prior_changes"]] == [
        ([1, 2], "added"),
        ([0, 2], "removed"),
    ]


@pytest.mark.parametrize("margin", [0.0, 0.05, 0.2])
@pytest.mark.parametrize("seed", range(4))
def test_a_prior_only_swaps_edges_within_the_margin(margin, seed):
    rng = np.random.default_rng(seed)
    n = 12
    keypoints = rng.normal(size=(n, 3))
    a = rng.uniform(0, 1, (n, n))
    a = (a + a.T) / 2
    np.fill_diagonal(a, 0)
    inside = _near_segments([(keypoints[i], keypoints[(i + 1) % n]) for i in range(n)], radius=0.5)
    penalty = edge_penalty(keypoints, a, inside=inside, volume_weight=20.0, margin=margin)
    assert penalty.max() <= margin * a.max() + 1e-12
    plain = {tuple(sorted(e)) for e in maximum_spanning_tree(a, keypoints)}
    chosen = {tuple(sorted(e)) for e in maximum_spanning_tree(a, keypoints, penalty)}
    if margin == 0.0:
        assert chosen == plain
    for i, j in chosen - plain:  # the edge it displaced lies on the plain tree's path from i to j
        path = _tree_path(plain, i, j)
        assert any(a[p, q] <= a[i, j] + margin * a.max() + 1e-12 for p, q in path if (p, q) not in chosen)


def _tree_path(edges, start, goal):
    neighbours = {}
    for p, q in edges:
        neighbours.setdefault(p, []).append(q)
        neighbours.setdefault(q, []).append(p)
    previous, stack = {start: None}, [start]
    while stack:
        node = stack.pop()
        for nxt in neighbours.get(node, []):
            if nxt not in previous:
                previous[nxt] = node
                stack.append(nxt)
    path, node = [], goal
    while previous[node] is not None:
        path.append(tuple(sorted((node, previous[node]))))
        node = previous[node]
    return path


def test_tip_bones_stay_inside_the_mesh_and_above_the_ground():
    from keydiff3d.rigging.mesh_tools import inside_test

    v, f = tube(length=2.0, radius=0.3)
    inside = inside_test(v, f, cells=48)
    keypoints = np.array([[0.0, 0, 0.3], [0.0, 0, 1.0], [0.0, 0, 1.85]])  # the last one 0.15 under the cap
    skeleton = build_skeleton(keypoints, _given(3, [(0, 1), (1, 2)]), root=0, leaf_bones=True, inside=inside)
    tip = next(b for b in skeleton.bones if b.kind == "leaf")
    samples = tip.head + np.linspace(0, 1, 20)[:, None] * (tip.tail - tip.head)
    assert inside(samples).all() and tip.length < 0.2  # half the parent would have been 0.43 long
    assert 0 < skeleton.decisions["tips_shortened"][tip.name] < 0.5

    legs = np.array([[0.0, 0, 1.0], [0.0, 0, 0.5], [0.0, 0, 0.1]])
    low = build_skeleton(legs, _given(3, [(0, 1), (1, 2)]), root=0, leaf_bones=True, ground=0.0)
    foot = next(b for b in low.bones if b.kind == "leaf")
    assert foot.tail[2] >= 0.0 and low.decisions["tips_shortened"][foot.name] <= 0.5
    free = build_skeleton(legs, _given(3, [(0, 1), (1, 2)]), root=0, leaf_bones=True)
    assert next(b for b in free.bones if b.kind == "leaf").tail[2] < 0.0 and "tips_shortened" not in free.decisions


@pytest.mark.parametrize("root_bone", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_one_bone_parents_the_whole_rig(root_bone, seed):
    rng = np.random.default_rng(seed)
    keypoints = rng.normal(size=(10, 3))
    a = rng.uniform(0, 1, (10, 10))
    skeleton = build_skeleton(keypoints, (a + a.T) / 2, leaf_bones=True, root_bone=root_bone)
    roots = [b for b in skeleton.bones if b.parent is None]
    assert len(roots) == 1
    if roots[0].kind == "root":
        assert not roots[0].deform and roots[0].name == "root"
        expected_head = skeleton.keypoints[skeleton.root] if not root_bone else None
        if expected_head is not None:
            np.testing.assert_allclose(roots[0].head, expected_head)
    else:  # a single bone leaves the root keypoint: it is the root
        assert not root_bone and (skeleton.parents == skeleton.root).sum() == 1


def test_rig_mesh_keeps_given_keypoints_and_edges_unless_asked():
    from keydiff3d.pipeline.rig import MeshArrays, load_preset, rig_mesh

    v, f = tube(length=2.0, radius=0.3)
    mesh = MeshArrays(v.astype(np.float32), f.astype(np.int32))
    keypoints = np.array([[0.0, 0, 0.2], [0.0, 0, 1.0], [0.0, 0.45, 1.8]])  # the last one outside the tube
    adjacency = _given(3, [(0, 1), (1, 2)])
    preset = load_preset("quadruped")  # volume weight 20
    kept = rig_mesh(mesh, keypoints, adjacency, preset, given=True, move_inside=False)
    np.testing.assert_allclose(kept.skeleton.keypoints, keypoints)
    assert {frozenset(e) for e in kept.skeleton.edges()} == {frozenset((0, 1)), frozenset((1, 2))}
    assert kept.provenance["keypoints_moved_inside"]["indices"] == []
    assert any("outside the mesh" in r for r in kept.skeleton.repairs)
    assert kept.provenance["skeleton"]["prior_changes"] == []
    assert kept.provenance["skinning"]["unweighted_before_fallback"] == 0
    moved = rig_mesh(mesh, keypoints, adjacency, preset, given=True, move_inside=True)
    assert moved.provenance["keypoints_moved_inside"]["indices"] == [2]
    assert "--move-inside" in moved.provenance["keypoints_moved_inside"]["rule"]
    for bundle in (kept, moved):
        assert sum(b.parent is None for b in bundle.skeleton.bones) == 1
        assert bundle.skin.method == "heat"
