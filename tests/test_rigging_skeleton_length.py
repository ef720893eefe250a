"""The spanning tree's geometric length prior (`length_weight` of build_skeleton / edge_penalty)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial.distance import cdist

from keydiff3d_addon.rigcore import (
    SkeletonError,
    build_skeleton,
    clean_adjacency,
    edge_penalty,
    length_penalty,
    maximum_spanning_tree,
    volume_penalty,
)


def _random_graph(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = np.triu(rng.random((n, n)), 1)
    return rng.normal(size=(n, 3)), a + a.T


def _ball(points):
    return np.linalg.norm(np.asarray(points), axis=1) < 1.5


def _edge_set(edges) -> set[frozenset]:
    return {frozenset(map(int, e)) for e in edges}


def _tree_length(keypoints, edges) -> float:
    return float(sum(np.linalg.norm(keypoints[i] - keypoints[j]) for i, j in edges))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("with_volume", [False, True])
def test_zero_length_weight_is_the_tree_without_the_prior(seed, with_volume):
    keypoints, a = _random_graph(14, seed)
    inside = _ball if with_volume else None
    # the tree as build_skeleton made it before the length prior existed
    clean = clean_adjacency(a, 14)
    penalty = 1.0 * clean.max() * volume_penalty(keypoints, _ball) if with_volume else None
    before = _edge_set(maximum_spanning_tree(clean, keypoints, penalty))
    skeleton = build_skeleton(keypoints, a, inside=inside, length_weight=0.0)
    assert _edge_set(skeleton.edges()) == before
    assert skeleton.to_dict() == build_skeleton(keypoints, a, inside=inside).to_dict()  # the code default is 0
    assert edge_penalty(keypoints, clean, length_weight=0.0) is None


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("weight", [0.05, 1.0, 7.0])
def test_uniform_adjacency_gives_the_euclidean_minimum_spanning_tree(seed, weight):
    keypoints = np.random.default_rng(seed).uniform(size=(20, 3)) * [2.0, 1.0, 0.5]
    skeleton = build_skeleton(keypoints, np.full((20, 20), 0.3), length_weight=weight)
    reference = minimum_spanning_tree(cdist(keypoints, keypoints))
    assert _tree_length(keypoints, skeleton.edges()) == pytest.approx(reference.sum())
    assert _edge_set(skeleton.edges()) == _edge_set(zip(*reference.nonzero()))  # no ties in random points


def _planted_chain(scale: float = 1.0, strength: float = 1.0):
    """Five keypoints on a line (extent 4 x scale), learned chain edges 0.5 and one strong learned
    cross edge 0-4 (1.0) spanning the whole body; everything x `strength`."""
    keypoints = scale * np.array([[i, 0.0, 0.0] for i in range(5)])
    a = np.zeros((5, 5))
    for i in range(4):
        a[i, i + 1] = a[i + 1, i] = 0.5
    a[0, 4] = a[4, 0] = 1.0
    return keypoints, strength * a


@pytest.mark.parametrize("scale,strength", [(1.0, 1.0), (0.2, 1.0), (3.0, 10.0)])
def test_long_cross_edge_gives_way_to_a_short_chain(scale, strength):
    # scores, m = max(a): cross 0-4 = m (1 - w x 4/4), chain = m (0.5 - w x 1/4); the cross edge
    # replaces the weakest chain edge while 1 - w > 0.5 - w/4, i.e. w < 2/3, whatever the units
    keypoints, a = _planted_chain(scale, strength)
    chain = {frozenset((i, i + 1)) for i in range(4)}
    assert frozenset((0, 4)) in _edge_set(build_skeleton(keypoints, a).edges())
    assert frozenset((0, 4)) in _edge_set(build_skeleton(keypoints, a, length_weight=0.6).edges())
    assert _edge_set(build_skeleton(keypoints, a, length_weight=0.7).edges()) == chain
    assert _edge_set(build_skeleton(keypoints, a, length_weight=2.0).edges()) == chain


def test_length_penalty_is_length_over_the_largest_bbox_side():
    keypoints = np.array([[0, 0, 0], [3, 0, 0], [3, 4, 0], [0, 0, 1.0]])  # bbox 3 x 4 x 1
    penalty = length_penalty(keypoints)
    assert penalty[0, 2] == pytest.approx(5 / 4) and penalty[0, 1] == pytest.approx(3 / 4)
    np.testing.assert_allclose(penalty, penalty.T)
    assert np.isfinite(length_penalty(np.zeros((3, 3)))).all()  # coincident keypoints: extent 1
    a = np.full((4, 4), 2.0)
    np.testing.assert_allclose(edge_penalty(keypoints, a, length_weight=0.5), 0.5 * 2.0 * penalty)
    both = edge_penalty(keypoints, a, inside=_ball, volume_weight=1.0, length_weight=0.5)
    np.testing.assert_allclose(both, 2.0 * volume_penalty(keypoints, _ball) + 0.5 * 2.0 * penalty)


@pytest.mark.parametrize("weight", [-0.1, float("nan"), float("inf"), "1"])
def test_bad_length_weight_raises_one_clear_error(weight):
    keypoints, a = _random_graph(4, 0)
    with pytest.raises(SkeletonError, match="length_weight must be a finite number >= 0"):
        build_skeleton(keypoints, a, length_weight=weight)
