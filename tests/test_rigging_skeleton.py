"""Spanning tree, root, bones, names, roll and degenerate inputs of keydiff3d_addon.rigcore.skeleton."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest

from keydiff3d_addon.rigcore import (
    Naming,
    Skeleton,
    SkeletonError,
    bone_rest_z_axis,
    bone_roll,
    build_skeleton,
    find_mirror,
    maximum_spanning_tree,
    tree_center,
)


def _random_graph(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    keypoints = rng.normal(size=(n, 3))
    a = rng.random((n, n))
    a = np.triu(a, 1)
    return keypoints, a + a.T


def _is_spanning_tree(n: int, edges) -> bool:
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(edges)
    return len(edges) == n - 1 and nx.is_tree(g)


def _prufer_trees(n: int):
    """Every labelled tree on n nodes (Prüfer sequences), as edge lists."""
    for seq in itertools.product(range(n), repeat=n - 2):
        degree = [1] * n
        for x in seq:
            degree[x] += 1
        edges = []
        for x in seq:
            leaf = min(i for i in range(n) if degree[i] == 1)
            edges.append((leaf, x))
            degree[leaf] -= 1
            degree[x] -= 1
        u, v = [i for i in range(n) if degree[i] == 1]
        edges.append((u, v))
        yield edges


@pytest.mark.parametrize("n,seed", [(2, 0), (3, 1), (5, 2), (6, 3)])
def test_mst_weight_equals_brute_force(n, seed):
    keypoints, a = _random_graph(n, seed)
    edges = maximum_spanning_tree(a, keypoints)
    assert _is_spanning_tree(n, edges)
    best = max(sum(a[u, v] for u, v in tree) for tree in _prufer_trees(n))
    assert sum(a[u, v] for u, v in edges) == pytest.approx(best)


@pytest.mark.parametrize("seed", range(5))
def test_mst_matches_networkx(seed):
    keypoints, a = _random_graph(25, seed)
    edges = maximum_spanning_tree(a, keypoints)
    g = nx.from_numpy_array(a)
    reference = nx.maximum_spanning_tree(g)
    assert {frozenset(e) for e in edges} == {frozenset(e) for e in reference.edges()}


def test_ties_prefer_shorter_edges():
    # a square with one diagonal: all weights equal -> the three shortest edges win
    keypoints = np.array([[0, 0, 0], [1, 0, 0], [1, 2, 0], [0, 2, 0.0]])
    a = np.ones((4, 4)) - np.eye(4)
    edges = {frozenset(e) for e in maximum_spanning_tree(a, keypoints)}
    lengths = sorted(np.linalg.norm(keypoints[list(e)[0]] - keypoints[list(e)[1]]) for e in edges)
    assert lengths == pytest.approx([1.0, 1.0, 2.0])


def test_edge_penalty_changes_the_tree():
    keypoints = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0.0]])
    a = np.array([[0, 1, 0.9], [1, 0, 0.5], [0.9, 0.5, 0]])
    assert {frozenset(e) for e in maximum_spanning_tree(a, keypoints)} == {frozenset((0, 1)), frozenset((0, 2))}
    penalty = np.zeros((3, 3))
    penalty[0, 2] = penalty[2, 0] = 1.0
    assert {frozenset(e) for e in maximum_spanning_tree(a, keypoints, penalty)} == {
        frozenset((0, 1)),
        frozenset((1, 2)),
    }


def test_volume_penalty_avoids_edges_that_leave_the_volume():
    # U shape: the two arm tips are close, but the gap between them is outside the volume
    keypoints = np.array([[0, 0, 0], [0, 0, 1], [0.3, 0, 1], [0.3, 0, 0], [0.15, 0, 0.0]])
    a = np.full((5, 5), 0.5) - 0.5 * np.eye(5)

    def inside(points):  # the U: two vertical bars and the bottom bar
        p = np.asarray(points)
        bars = (np.abs(p[:, 0]) < 0.05) | (np.abs(p[:, 0] - 0.3) < 0.05)
        return bars | (p[:, 2] < 0.05)

    plain = {frozenset(e) for e in maximum_spanning_tree(a, keypoints)}
    skeleton = build_skeleton(keypoints, a, inside=inside)
    assert frozenset((1, 2)) in plain
    assert frozenset((1, 2)) not in {frozenset(e) for e in skeleton.edges()}


def test_root_is_the_tree_center_and_parents_follow():
    keypoints = np.array([[i, 0, 0] for i in range(5)], float)  # a chain 0-1-2-3-4
    a = np.zeros((5, 5))
    for i in range(4):
        a[i, i + 1] = a[i + 1, i] = 1.0
    skeleton = build_skeleton(keypoints, a)
    assert skeleton.root == 2
    assert skeleton.parents.tolist() == [1, 2, -1, 2, 3]
    assert build_skeleton(keypoints, a, root=0).parents.tolist() == [-1, 0, 1, 2, 3]
    assert tree_center(keypoints, [(0, 1), (1, 2), (2, 3), (3, 4)]) == 2


@pytest.mark.parametrize("seed", range(3))
def test_bones_one_per_edge_head_at_parent(seed):
    keypoints, a = _random_graph(12, seed)
    skeleton = build_skeleton(keypoints, a)
    bones = skeleton.deform_bones()
    assert len(bones) == 11 and all(b.kind == "edge" for b in bones)
    assert len(set(skeleton.bone_names())) == len(skeleton.bones)
    seen = {b.name for b in skeleton.bones if not b.deform}  # the root bone, first
    for b in bones:
        assert b.parent is None or b.parent in seen  # parent-first order
        seen.add(b.name)
        p = skeleton.parents[b.keypoint]
        np.testing.assert_allclose(b.head, skeleton.keypoints[p])
        np.testing.assert_allclose(b.tail, skeleton.keypoints[b.keypoint])
        parent = skeleton.bone(b.parent) if b.parent else None
        assert b.connected == (parent is not None and np.allclose(parent.tail, b.head))
    assert sorted(b.keypoint for b in bones) == sorted(set(range(12)) - {skeleton.root})


def test_leaf_and_root_bones():
    keypoints, a = _random_graph(8, 7)
    skeleton = build_skeleton(keypoints, a, leaf_bones=True, root_bone=True, ground=-3.0)
    leaves = [i for i in range(8) if i != skeleton.root and not (skeleton.parents == i).any()]
    leaf_bones = [b for b in skeleton.bones if b.kind == "leaf"]
    assert sorted(b.keypoint for b in leaf_bones) == sorted(leaves)
    for b in leaf_bones:
        edge = next(e for e in skeleton.bones if e.kind == "edge" and e.keypoint == b.keypoint)
        assert b.parent == edge.name and b.deform and b.connected
        np.testing.assert_allclose(b.head, edge.tail)
        np.testing.assert_allclose(np.cross(b.tail - b.head, edge.tail - edge.head), 0, atol=1e-12)
    root = skeleton.bones[0]
    assert root.kind == "root" and not root.deform and root.name == "root" and root.head[2] == -3.0
    children = [b for b in skeleton.bones if b.parent == "root"]
    assert children and all(skeleton.parents[b.keypoint] == skeleton.root for b in children)
    assert len(skeleton.deform_bones()) == 7 + len(leaves)


def _quadruped():
    kp = {
        "pelvis": (0, 0.3, 0.5),
        "spine": (0, 0.0, 0.52),
        "chest": (0, -0.3, 0.55),
        "neck": (0, -0.45, 0.7),
        "head": (0, -0.55, 0.8),
        "tail": (0, 0.5, 0.55),
    }
    for side, x in (("L", 0.12), ("R", -0.12)):
        kp |= {
            f"hip{side}": (x, 0.3, 0.45),
            f"knee{side}": (x, 0.32, 0.25),
            f"foot{side}": (x, 0.3, 0.02),
            f"sh{side}": (x, -0.3, 0.5),
            f"el{side}": (x, -0.32, 0.27),
            f"hand{side}": (x, -0.3, 0.02),
        }
    edges = [("pelvis", "spine"), ("spine", "chest"), ("chest", "neck"), ("neck", "head"), ("pelvis", "tail")]
    for s in "LR":
        edges += [
            ("pelvis", f"hip{s}"),
            (f"hip{s}", f"knee{s}"),
            (f"knee{s}", f"foot{s}"),
            ("chest", f"sh{s}"),
            (f"sh{s}", f"el{s}"),
            (f"el{s}", f"hand{s}"),
        ]
    names = list(kp)
    a = np.full((len(names),) * 2, 0.05) - 0.05 * np.eye(len(names))
    for u, v in edges:
        a[names.index(u), names.index(v)] = a[names.index(v), names.index(u)] = 1.0
    return names, np.array([kp[n] for n in names], float), a


def test_symmetric_skeleton_gets_mirrored_names():
    names, keypoints, a = _quadruped()
    skeleton = build_skeleton(keypoints, a, leaf_bones=True)
    by_kp = {b.keypoint: b.name for b in skeleton.bones if b.kind == "edge"}
    for i, n in enumerate(names):
        if n.endswith("L"):
            j = names.index(n[:-1] + "R")
            assert by_kp[i].endswith(".L") and by_kp[j] == by_kp[i][:-2] + ".R"
    assert by_kp[names.index("footL")].startswith("leg")
    assert by_kp[names.index("head")].startswith("neck")
    assert by_kp[names.index("tail")].startswith("tail")
    assert {n for n in skeleton.bone_names() if "tip" in n} >= {"neck_tip", "tail_tip"}
    # rotating the whole creature about z keeps the same names (the plane is found, not assumed)
    angle = np.radians(37)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    turned = build_skeleton(keypoints @ rot.T, a, leaf_bones=True)
    assert sorted(turned.bone_names()) == sorted(skeleton.bone_names())


def test_asymmetric_skeleton_gets_index_names():
    keypoints, a = _random_graph(6, 11)
    skeleton = build_skeleton(keypoints, a, leaf_bones=True)
    assert all(n.startswith("bone_") for n in skeleton.bone_names(deform_only=True))
    names = build_skeleton(_quadruped()[1], _quadruped()[2], naming=Naming(style="index")).bone_names(deform_only=True)
    assert names == [f"bone_{i:02d}" for i in range(1, len(names) + 1)]


def test_find_mirror_reports_pairs_and_sides():
    names, keypoints, a = _quadruped()
    skeleton = build_skeleton(keypoints, a)
    mirror = find_mirror(keypoints, skeleton.parents)
    assert mirror is not None
    assert mirror.mirror[names.index("kneeL")] == names.index("kneeR")
    assert mirror.side[names.index("kneeL")] == 1 and mirror.side[names.index("spine")] == 0
    moved = keypoints.copy()
    moved[names.index("kneeL")] += [0.2, 0.1, 0.0]
    assert find_mirror(moved, skeleton.parents) is None


def test_roll_points_bone_z_to_world_up():
    rng = np.random.default_rng(0)
    for d in rng.normal(size=(50, 3)):
        d /= np.linalg.norm(d)
        roll = bone_roll(np.zeros(3), d)
        z0 = bone_rest_z_axis(d)
        # rotate z0 about the bone axis by roll (Rodrigues)
        z = z0 * np.cos(roll) + np.cross(d, z0) * np.sin(roll) + d * (d @ z0) * (1 - np.cos(roll))
        target = np.array([0, 0, 1.0]) if abs(d[2]) <= np.cos(np.radians(30)) else np.array([0, -1.0, 0])
        target = target - (target @ d) * d
        np.testing.assert_allclose(z, target / np.linalg.norm(target), atol=1e-9)
        assert abs(z0 @ d) < 1e-9


def test_skeleton_dict_round_trip():
    keypoints, a = _random_graph(7, 4)
    skeleton = build_skeleton(keypoints, a, leaf_bones=True, root_bone=True)
    again = Skeleton.from_dict(skeleton.to_dict(), skeleton.keypoints, skeleton.adjacency)
    assert again.to_dict() == skeleton.to_dict()
    assert again.root == skeleton.root and np.array_equal(again.parents, skeleton.parents)


# --------------------------------------------------------------------------- degenerate input


@pytest.mark.parametrize(
    "keypoints,adjacency,message",
    [
        (np.array([[0.0, 0, np.nan], [1, 0, 0]]), np.ones((2, 2)), "NaN"),
        (np.array([[0.0, 0, 0], [np.inf, 0, 0]]), np.ones((2, 2)), "NaN or infinite"),
        (np.array([[0.0, 0, 0], [1, 0, 0]]), np.array([[0, np.nan], [np.nan, 0]]), "adjacency contains NaN"),
        (np.zeros((1, 3)), np.zeros((1, 1)), "at least 2 keypoints"),
        (np.zeros((3, 2)), np.zeros((3, 3)), "N x 3"),
        (np.eye(3), np.zeros((2, 2)), "3 x 3"),
    ],
)
def test_bad_input_raises_one_clear_error(keypoints, adjacency, message):
    with pytest.raises(SkeletonError, match=message):
        build_skeleton(keypoints, adjacency)


def test_bad_root_raises():
    keypoints, a = _random_graph(4, 0)
    with pytest.raises(SkeletonError, match="out of range"):
        build_skeleton(keypoints, a, root=9)
    with pytest.raises(SkeletonError, match="center"):
        build_skeleton(keypoints, a, root="middle")


def test_asymmetric_and_negative_adjacency_are_repaired():
    keypoints, a = _random_graph(6, 5)
    skewed = a.copy()
    skewed[0, 1] += 0.5
    skewed[2, 3] = -1.0
    skeleton = build_skeleton(keypoints, skewed)
    assert np.allclose(skeleton.adjacency, skeleton.adjacency.T) and (skeleton.adjacency >= 0).all()
    assert skeleton.adjacency[0, 1] == pytest.approx(a[0, 1] + 0.25)
    assert any("symmetric" in r for r in skeleton.repairs) and any("negative" in r for r in skeleton.repairs)


def test_all_zero_adjacency_falls_back_to_euclidean_tree():
    keypoints, _ = _random_graph(9, 6)
    skeleton = build_skeleton(keypoints, np.zeros((9, 9)))
    dist = np.linalg.norm(keypoints[:, None] - keypoints[None], axis=-1)
    euclidean = nx.minimum_spanning_tree(nx.from_numpy_array(dist))
    assert {frozenset(e) for e in skeleton.edges()} == {frozenset(e) for e in euclidean.edges()}
    assert any("all zero" in r for r in skeleton.repairs)


def test_coincident_keypoints_are_nudged_apart():
    keypoints = np.array([[0, 0, 0], [0, 0, 1], [0, 0, 1], [0, 0, 2.0]])
    a = np.zeros((4, 4))
    for i, j in [(0, 1), (1, 2), (2, 3)]:
        a[i, j] = a[j, i] = 1.0
    skeleton = build_skeleton(keypoints, a, root=0)
    lengths = [b.length for b in skeleton.bones]
    assert min(lengths) > 0
    assert any("coincided" in r for r in skeleton.repairs)
    assert len(skeleton.bones) == 3


def test_keypoints_outside_the_volume_are_reported():
    keypoints = np.array([[0, 0, 0], [0, 0, 1], [5, 5, 5.0]])
    skeleton = build_skeleton(keypoints, np.ones((3, 3)), inside=lambda p: np.linalg.norm(np.asarray(p), axis=1) < 2)
    assert any("outside the mesh" in r and "[2]" in r for r in skeleton.repairs)


def test_y_up_frame_gives_the_same_rig_as_z_up():
    names, keypoints, a = _quadruped()
    z_up = build_skeleton(keypoints, a, leaf_bones=True, root_bone=True)
    y_keypoints = np.stack([keypoints[:, 0], keypoints[:, 2], -keypoints[:, 1]], 1)  # glTF's frame
    y_up = build_skeleton(y_keypoints, a, leaf_bones=True, root_bone=True, up_axis="Y")
    assert y_up.bone_names() == z_up.bone_names()
    for bz, by in zip(z_up.bones, y_up.bones):
        assert by.roll == pytest.approx(bz.roll, abs=1e-9)
        np.testing.assert_allclose(by.head, [bz.head[0], bz.head[2], -bz.head[1]], atol=1e-12)
        np.testing.assert_allclose(by.tail, [bz.tail[0], bz.tail[2], -bz.tail[1]], atol=1e-12)
    with pytest.raises(SkeletonError, match="up_axis"):
        build_skeleton(keypoints, a, up_axis="X")
