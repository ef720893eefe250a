"""Fixed joint sets of the procedural creature categories.

Every category has one joint list (names, parents) shared by all its creatures, so a regressor from
predicted keypoints to ground-truth joints is well defined per category. A joint's rest offset is
sampled per creature (random proportions) in the creature's own frame: x forward, y left, z up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SkeletonSpec:
    """A category's joints: names (J,), parents (J,) with -1 for the root (parents precede children)."""

    category: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]

    def __post_init__(self) -> None:
        for j, p in enumerate(self.parents):
            if not (p == -1 and j == 0) and not 0 <= p < j:
                raise ValueError(f"{self.category}: joint {self.joint_names[j]} has invalid parent {p}")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def index(self, name: str) -> int:
        return self.joint_names.index(name)

    @property
    def bones(self) -> np.ndarray:
        """(J-1, 2) int32 (parent, child) pairs."""
        return np.array([(p, j) for j, p in enumerate(self.parents) if p >= 0], np.int32)


def _spec(category: str, chain: list[tuple[str, str | None]]) -> SkeletonSpec:
    names = [n for n, _ in chain]
    parents = [-1 if p is None else names.index(p) for _, p in chain]
    return SkeletonSpec(category, tuple(names), tuple(parents))


def _limb(prefix: str, parts: list[str], attach: str) -> list[tuple[str, str | None]]:
    chain, parent = [], attach
    for part in parts:
        name = f"{prefix}_{part}"
        chain.append((name, parent))
        parent = name
    return chain


def _quadruped() -> SkeletonSpec:
    chain: list[tuple[str, str | None]] = [
        ("pelvis", None),
        ("spine", "pelvis"),
        ("chest", "spine"),
        ("neck", "chest"),
        ("head", "neck"),
        ("snout", "head"),
        ("tail_base", "pelvis"),
        ("tail_mid", "tail_base"),
        ("tail_tip", "tail_mid"),
    ]
    for side in ("l", "r"):
        chain += _limb(f"front_{side}", ["shoulder", "elbow", "wrist", "paw"], "chest")
    for side in ("l", "r"):
        chain += _limb(f"back_{side}", ["hip", "knee", "ankle", "paw"], "pelvis")
    return _spec("quadruped", chain)


def _biped() -> SkeletonSpec:
    chain: list[tuple[str, str | None]] = [
        ("pelvis", None),
        ("spine", "pelvis"),
        ("chest", "spine"),
        ("neck", "chest"),
        ("head", "neck"),
        ("head_top", "head"),
    ]
    for side in ("l", "r"):
        chain += _limb(f"arm_{side}", ["shoulder", "elbow", "wrist", "hand"], "chest")
    for side in ("l", "r"):
        chain += _limb(f"leg_{side}", ["hip", "knee", "ankle", "toe"], "pelvis")
    return _spec("biped", chain)


def _bird() -> SkeletonSpec:
    chain: list[tuple[str, str | None]] = [
        ("pelvis", None),
        ("chest", "pelvis"),
        ("neck", "chest"),
        ("head", "neck"),
        ("beak", "head"),
        ("tail", "pelvis"),
    ]
    for side in ("l", "r"):
        chain += _limb(f"wing_{side}", ["shoulder", "elbow", "wrist", "tip"], "chest")
    for side in ("l", "r"):
        chain += _limb(f"leg_{side}", ["hip", "knee", "ankle", "toe"], "pelvis")
    return _spec("bird", chain)


LIMBTREE_LIMBS = 5
LIMBTREE_SEGMENTS = 3


def _limbtree() -> SkeletonSpec:
    """A body with a head and five three-segment limbs whose directions vary per creature."""
    chain: list[tuple[str, str | None]] = [("body", None), ("head", "body")]
    for i in range(LIMBTREE_LIMBS):
        chain += _limb(f"limb{i}", [f"j{k}" for k in range(LIMBTREE_SEGMENTS + 1)], "body")
    return _spec("limbtree", chain)


SKELETONS: dict[str, SkeletonSpec] = {s.category: s for s in (_quadruped(), _biped(), _bird(), _limbtree())}
CATEGORIES: tuple[str, ...] = tuple(SKELETONS)
