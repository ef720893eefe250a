"""Deformation measures: linear blend skinning, vertex error, posability, animation fit (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from keydiff3d.evaluation.deformation import (
    animation_fit,
    bend_axis,
    bend_matrices,
    fit_rigid,
    linear_blend_skinning,
    mean_vertex_error,
    mesh_edges,
    posability,
    rotation_matrix,
    subtree,
)


def _rigid(angle: float, axis, shift) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = rotation_matrix(np.asarray(axis, float), angle)
    m[:3, 3] = shift
    return m


def _tube(length: float = 2.0, rings: int = 21, sides: int = 8, radius: float = 0.1):
    """A closed-ish tube along +x (vertices (R*S, 3), faces), two bones [0,1] and [1,2] along it."""
    x = np.linspace(0.0, length, rings)
    a = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    v = np.stack([np.repeat(x, sides), radius * np.tile(np.cos(a), rings), radius * np.tile(np.sin(a), rings)], 1)
    faces = []
    for r in range(rings - 1):
        for s in range(sides):
            i, j = r * sides + s, r * sides + (s + 1) % sides
            faces += [[i, j, i + sides], [j, j + sides, i + sides]]
    heads = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    tails = np.array([[1.0, 0, 0], [2.0, 0, 0]])
    return v, np.array(faces), heads, tails, np.array([-1, 0])


def test_lbs_identity_rigid_and_unweighted():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(50, 3))
    w = rng.random((50, 3))
    w[7] = 0.0
    out = linear_blend_skinning(v, w, np.tile(np.eye(4), (2, 3, 1, 1)))
    np.testing.assert_allclose(out, np.stack([v, v]))
    m = _rigid(0.7, [0, 1, 1], [1, 2, 3])
    out = linear_blend_skinning(v, w, np.tile(m, (1, 3, 1, 1)))[0]
    expected = v @ m[:3, :3].T + m[:3, 3]
    expected[7] = v[7]  # a vertex no bone moves stays in place
    np.testing.assert_allclose(out, expected, atol=1e-12)


def test_lbs_normalises_rows():
    v = np.array([[1.0, 0, 0]])
    m = np.stack([np.eye(4), _rigid(0.0, [0, 0, 1], [2, 0, 0])])[None]
    np.testing.assert_allclose(linear_blend_skinning(v, np.array([[2.0, 2.0]]), m)[0], [[2.0, 0, 0]])


def test_mean_vertex_error_zero_for_same_weights_positive_otherwise():
    v, f, heads, tails, parents = _tube()
    m = bend_matrices(heads, tails, parents, 1, 60.0)[None]
    rigid = np.stack([v[:, 0] < 1.0, v[:, 0] >= 1.0], 1).astype(float)
    blended = np.stack([np.clip(1.5 - v[:, 0], 0, 1), np.clip(v[:, 0] - 0.5, 0, 1)], 1)
    assert mean_vertex_error(v, rigid, rigid, m) == 0.0
    assert mean_vertex_error(v, blended, rigid, m) > 0.01


def test_bend_axis_and_subtree():
    np.testing.assert_allclose(bend_axis([0, 0, 0], [1, 0, 0]), [0, -1, 0])
    np.testing.assert_allclose(bend_axis([0, 0, 0], [0, 0, 1]), [1, 0, 0])  # vertical bone -> world x
    parents = np.array([-1, 0, 1, 0, 3])
    np.testing.assert_array_equal(subtree(parents, 1), [False, True, True, False, False])
    np.testing.assert_array_equal(subtree(parents, 0), [True] * 5)


def test_bend_turns_the_subtree_about_the_head():
    v, f, heads, tails, parents = _tube()
    m = bend_matrices(heads, tails, parents, 1, 90.0)
    np.testing.assert_allclose(m[0], np.eye(4))
    np.testing.assert_allclose((m[1] @ [1.0, 0, 0, 1])[:3], [1.0, 0, 0], atol=1e-12)  # the head stays
    np.testing.assert_allclose(np.linalg.norm((m[1] @ [2.0, 0, 0, 1])[:3] - [1.0, 0, 0]), 1.0)


def test_posability_tears_rigid_weights_more_than_blended():
    v, f, heads, tails, parents = _tube()
    rigid = np.stack([v[:, 0] < 1.0, v[:, 0] >= 1.0], 1).astype(float)
    blended = np.stack([np.clip(1.5 - v[:, 0], 0, 1), np.clip(v[:, 0] - 0.5, 0, 1)], 1)
    hard = posability(v, f, rigid, heads, tails, parents, degrees=90.0)
    soft = posability(v, f, blended, heads, tails, parents, degrees=90.0)
    assert hard.torn[1] > soft.torn[1] >= 0.0
    assert hard.worst[1] > 2.0
    # bending the root moves everything rigidly: nothing tears
    assert hard.torn[0] == 0.0 and soft.torn[0] == 0.0
    assert len(mesh_edges(f)) == 3 * len(f) // 2 + 8  # the tube's edges: every inner edge shared by 2 faces


def test_fit_rigid_recovers_a_transform():
    rng = np.random.default_rng(1)
    source = rng.normal(size=(40, 3))
    m = _rigid(1.1, [1, 2, 3], [0.5, -1, 2])
    target = source @ m[:3, :3].T + m[:3, 3]
    np.testing.assert_allclose(fit_rigid(source, target, rng.random(40) + 0.1), m, atol=1e-9)
    np.testing.assert_allclose(fit_rigid(source, target, np.zeros(40)), np.eye(4))


@pytest.mark.parametrize("degrees", [20.0, 70.0])
def test_animation_fit_is_exact_for_parts_that_move_rigidly(degrees):
    v, f, heads, tails, parents = _tube()
    rigid = np.stack([v[:, 0] < 1.0, v[:, 0] >= 1.0], 1).astype(float)
    targets = linear_blend_skinning(v, rigid, bend_matrices(heads, tails, parents, 1, degrees)[None])
    assert animation_fit(v, rigid, targets) < 1e-9


def test_animation_fit_ranks_a_rig_that_splits_where_the_mesh_bends():
    v, f, heads, tails, parents = _tube()
    blended = np.stack([np.clip(1.5 - v[:, 0], 0, 1), np.clip(v[:, 0] - 0.5, 0, 1)], 1)
    targets = linear_blend_skinning(v, blended, bend_matrices(heads, tails, parents, 1, 45.0)[None])
    two_parts = animation_fit(v, blended, targets)
    wrong_split = np.stack([v[:, 0] < 0.4, v[:, 0] >= 0.4], 1).astype(float)  # splits away from the bend
    assert two_parts < animation_fit(v, wrong_split, targets) < animation_fit(v, np.ones((len(v), 1)), targets)


def test_a_seam_that_opens_tears_even_with_no_edge_across_it():
    """Split the tube at x = 1 into two pieces (the file's copies of the seam ring): rigid weights open
    the seam when the second bone bends, which the pieces' own edges cannot show."""
    v, f, heads, tails, parents = _tube()
    on_seam = np.isclose(v[:, 0], 1.0)
    copies = np.flatnonzero(on_seam)
    split_v = np.vstack([v, v[copies]])
    remap = np.arange(len(v))
    remap[copies] = len(v) + np.arange(len(copies))
    right = v[f].mean(1)[:, 0] > 1.0
    split_f = np.where(right[:, None], remap[f], f)  # faces right of the seam use the copies
    rigid = np.stack([split_v[:, 0] < 1.0, split_v[:, 0] >= 1.0], 1).astype(float)
    rigid[len(v) :] = [0.0, 1.0]  # the copies follow the second bone, the originals the first
    rigid[copies] = [1.0, 0.0]
    split = posability(split_v, split_f, rigid, heads, tails, parents, bones=[1], degrees=90.0)
    same = rigid.copy()
    same[len(v) :] = same[copies]  # copies carry the same weights: the seam holds
    held = posability(split_v, split_f, same, heads, tails, parents, bones=[1], degrees=90.0)
    assert split.torn[1] > held.torn[1]
