"""Bone names from what the chains are (keydiff3d_addon.rigcore.naming), with a mirror given by the caller."""

from __future__ import annotations

import numpy as np
import pytest

from keydiff3d_addon.rigcore import (
    Mirror,
    Naming,
    SkeletonError,
    build_skeleton,
    chain_names,
)

# a quadruped facing +x, z up, mirror plane y = 0: pelvis (root) - spine - chest - neck - skull - snout,
# ears on the skull, a tail, four legs of two bones each
POINTS = {
    "pelvis": (-0.3, 0.0, 0.5),
    "chest": (0.3, 0.0, 0.55),
    "neck": (0.45, 0.0, 0.75),
    "skull": (0.55, 0.0, 0.85),
    "snout": (0.7, 0.0, 0.8),
    "tail": (-0.7, 0.0, 0.55),
    "tail_tip": (-0.9, 0.0, 0.4),
    "earL": (0.55, 0.08, 0.97),
    "earR": (0.55, -0.08, 0.97),
    "hipL": (-0.3, 0.1, 0.45),
    "kneeL": (-0.3, 0.1, 0.25),
    "footL": (-0.3, 0.1, 0.0),
    "hipR": (-0.3, -0.1, 0.45),
    "kneeR": (-0.3, -0.1, 0.25),
    "footR": (-0.3, -0.1, 0.0),
    "armL": (0.3, 0.1, 0.45),
    "elbowL": (0.3, 0.1, 0.25),
    "pawL": (0.3, 0.1, 0.0),
    "armR": (0.3, -0.1, 0.45),
    "elbowR": (0.3, -0.1, 0.25),
    "pawR": (0.3, -0.1, 0.0),
}
EDGES = [
    ("pelvis", "chest"),
    ("chest", "neck"),
    ("neck", "skull"),
    ("skull", "snout"),
    ("skull", "earL"),
    ("skull", "earR"),
    ("pelvis", "tail"),
    ("tail", "tail_tip"),
    ("pelvis", "hipL"),
    ("hipL", "kneeL"),
    ("kneeL", "footL"),
    ("pelvis", "hipR"),
    ("hipR", "kneeR"),
    ("kneeR", "footR"),
    ("chest", "armL"),
    ("armL", "elbowL"),
    ("elbowL", "pawL"),
    ("chest", "armR"),
    ("armR", "elbowR"),
    ("elbowR", "pawR"),
]
NAMES = list(POINTS)


def _tree():
    k = np.array([POINTS[n] for n in NAMES], float)
    a = np.zeros((len(k), len(k)))
    for u, v in EDGES:
        a[NAMES.index(u), NAMES.index(v)] = a[NAMES.index(v), NAMES.index(u)] = 1.0
    return k, a


def _mirror(k: np.ndarray) -> Mirror:
    """The y = 0 mirror of the toy: .L = +y here, which rigcore turns to Blender's +X convention."""
    pair = {n: n[:-1] + {"L": "R", "R": "L"}[n[-1]] if n[-1] in "LR" else n for n in NAMES}
    mirror = np.array([NAMES.index(pair[n]) for n in NAMES])
    side = np.sign(k[:, 1]).astype(int)
    return Mirror(np.array([0.0, 1.0, 0.0]), np.zeros(3), mirror, side, 0.0)


def _by_keypoint(skeleton) -> dict[str, str]:
    return {NAMES[b.keypoint]: b.name for b in skeleton.bones if b.kind == "edge"}


def test_chains_are_named_from_what_they_are():
    k, a = _tree()
    skeleton = build_skeleton(
        k, a, root=NAMES.index("pelvis"), volume_weight=0.0, mirror=_mirror(k), naming=Naming(limb_other="leg")
    )
    names = _by_keypoint(skeleton)
    assert names["chest"].startswith("spine") and names["neck"].startswith("neck") and names["snout"].startswith("head")
    assert names["tail"].startswith("tail") and names["tail_tip"].startswith("tail")
    assert names["earL"].startswith("ear") and names["earL"][:-2] == names["earR"][:-2]
    assert {names["earL"][-2:], names["earR"][-2:]} == {".L", ".R"}
    for joint in ("hip", "knee", "foot", "arm", "elbow", "paw"):
        left, right = names[joint + "L"], names[joint + "R"]
        assert left.startswith("leg") and left[:-2] == right[:-2] and {left[-2:], right[-2:]} == {".L", ".R"}
    # front legs come first along the body (head end first)
    assert names["armL"].startswith("leg1") and names["hipL"].startswith("leg2")


def test_names_do_not_depend_on_how_the_creature_is_turned():
    k, a = _tree()
    turn = np.radians(70.0)
    rotation = np.array([[np.cos(turn), -np.sin(turn), 0], [np.sin(turn), np.cos(turn), 0], [0, 0, 1.0]])
    mirror = _mirror(k)
    turned = Mirror(rotation @ mirror.normal, mirror.point, mirror.mirror, mirror.side, 0.0)
    root = NAMES.index("pelvis")
    first = build_skeleton(k, a, root=root, volume_weight=0.0, mirror=mirror).bone_names()
    second = build_skeleton(k @ rotation.T, a, root=root, volume_weight=0.0, mirror=turned).bone_names()
    assert first == second


def test_rising_paired_chains_are_wings_and_others_the_presets_limb():
    k, a = _tree()
    for joint, z in (
        ("armL", 0.75),
        ("elbowL", 0.95),
        ("pawL", 1.15),
        ("armR", 0.75),
        ("elbowR", 0.95),
        ("pawR", 1.15),
    ):
        k[NAMES.index(joint), 2] = z
    names = _by_keypoint(build_skeleton(k, a, root=NAMES.index("pelvis"), volume_weight=0.0, mirror=_mirror(k)))
    assert names["pawL"].startswith("wing") and names["pawR"].endswith(".R")
    for joint, y in (("armL", 0.2), ("elbowL", 0.4), ("pawL", 0.6), ("armR", -0.2), ("elbowR", -0.4), ("pawR", -0.6)):
        k[NAMES.index(joint)] = (0.3, y, 0.55)  # level, sideways: an arm
    names = _by_keypoint(
        build_skeleton(
            k, a, root=NAMES.index("pelvis"), volume_weight=0.0, mirror=_mirror(k), naming=Naming(limb_other="arm")
        )
    )
    assert names["pawL"].startswith("arm")


def test_a_mirror_that_does_not_fit_the_tree_is_refused():
    k, a = _tree()
    mirror = _mirror(k)
    broken = Mirror(mirror.normal, mirror.point, np.arange(len(k)), mirror.side, 0.0)  # pairs nobody
    with pytest.raises(SkeletonError, match="mirror pairs"):
        build_skeleton(k, a, root=0, volume_weight=0.0, mirror=broken)
    swapped = mirror.mirror.copy()
    i, j = NAMES.index("kneeL"), NAMES.index("footR")
    swapped[[i, j, mirror.mirror[i], mirror.mirror[j]]] = swapped[[j, i, mirror.mirror[j], mirror.mirror[i]]]
    with pytest.raises(SkeletonError):
        build_skeleton(
            k, a, root=0, volume_weight=0.0, mirror=Mirror(mirror.normal, mirror.point, swapped, mirror.side, 0.0)
        )


def test_without_a_mirror_the_plane_is_searched_on_the_keypoints():
    k, a = _tree()
    found = chain_names(k, build_skeleton(k, a, root=0, volume_weight=0.0).parents, 0, Naming())
    assert found is not None and any(n.endswith(".L") for n in found.values())
    k[NAMES.index("footL")] += (0.2, 0.1, 0.0)  # no longer symmetric: index names
    edges = [b.name for b in build_skeleton(k, a, root=0, volume_weight=0.0).bones if b.kind == "edge"]
    assert all(n.startswith("bone_") for n in edges)
