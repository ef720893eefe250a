"""Procedural articulated creatures with known joints: quadrupeds, bipeds, birds, limb trees.

`generate_creature(category, seed)` samples proportions (rest offsets, radii), a pose (a rotation
per joint within its limits, by forward kinematics), colours and a pattern, builds one tapered
capsule per bone, and places the result in the generator's world frame with
`geometry.fit_to_world` (the same placement is applied to the joints). Everything is a pure
function of (category, seed).

Creature frame while building: x forward, y left, z up (the world's z up is kept; a random yaw
turns the creature about z so every orbit view shows it from a different side).
"""

from __future__ import annotations

import colorsys
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..geometry import Placement, fit_to_world
from ..geometry.mesh import vertex_normals
from .shapes import Capsule
from .skeletons import CATEGORIES, LIMBTREE_LIMBS, LIMBTREE_SEGMENTS, SKELETONS, SkeletonSpec

__all__ = ["CATEGORIES", "Creature", "generate_creature", "watertight_mesh"]


@dataclass
class Creature:
    """A posed creature in the world frame (z up, centred, largest bbox side 1).

    vertices (V, 3) float32, faces (F, 3) int32, vertex_colors (V, 3) float32 in [0, 1],
    joints (J, 3) float32, joint_names (J,), parents (J,) int32 (-1 = root), bones (E, 2) int32
    (parent, child) joint pairs, parts: the `Capsule`s in the world frame (one per bone, then the
    accessories such as ears and horns, which have no joint), for the SDF.
    """

    category: str
    seed: int
    vertices: np.ndarray
    faces: np.ndarray
    vertex_colors: np.ndarray
    joints: np.ndarray
    joint_names: list[str]
    parents: np.ndarray
    bones: np.ndarray
    parts: list[Capsule] = field(default_factory=list, repr=False)
    placement: Placement | None = None  # build frame -> world (informative)

    @property
    def vertex_normals(self) -> np.ndarray:
        return vertex_normals(self.vertices, self.faces)

    def to_trimesh(self):
        """The triangle soup as a `trimesh.Trimesh` with vertex colours (not watertight)."""
        import trimesh

        colors = np.concatenate([self.vertex_colors, np.ones((len(self.vertices), 1), np.float32)], 1)
        return trimesh.Trimesh(
            self.vertices, self.faces, vertex_colors=(colors * 255).round().astype(np.uint8), process=False
        )


# --------------------------------------------------------------------------- body plans


@dataclass
class _Plan:
    """Per-creature body plan in the build frame, indexed by joint (entry 0 = root).

    offsets: (J, 3) rest vector parent -> joint (root: its position);
    limits: (J, 3, 2) degrees, (lo, hi) of the rotation at the joint about x (roll), y (pitch),
            z (yaw); the rotation at a joint moves its descendants;
    radii: (J, 2) radius of the bone ending at the joint, at its parent end and at the joint;
    section: (J, 2) (thick, wide) cross-section scales of that bone;
    region: (J,) colour region of that bone (0 body, 1 limbs, 2 head, 3 extremities).
    """

    offsets: np.ndarray
    limits: np.ndarray
    radii: np.ndarray
    section: np.ndarray
    region: np.ndarray


class _PlanBuilder:
    def __init__(self, spec: SkeletonSpec) -> None:
        J = spec.num_joints
        self.spec = spec
        self.plan = _Plan(
            np.zeros((J, 3)), np.zeros((J, 3, 2)), np.full((J, 2), 0.05), np.ones((J, 2)), np.zeros(J, np.int32)
        )

    def set(
        self,
        name: str,
        offset,
        radii=(0.05, 0.05),
        limits=((0, 0), (0, 0), (0, 0)),
        section=(1.0, 1.0),
        region: int = 0,
    ) -> None:
        j = self.spec.index(name)
        self.plan.offsets[j] = offset
        self.plan.radii[j] = radii
        self.plan.limits[j] = limits
        self.plan.section[j] = section
        self.plan.region[j] = region

    def limb(
        self, prefix: str, parts: list[str], offsets, radii, limits, side: str, section=(1.0, 1.0), region: int = 1
    ) -> None:
        """Set a limb's chain; for side 'r' the y offsets and roll/yaw limits are mirrored."""
        sign = -1.0 if side == "r" else 1.0
        for part, offset, radius, lim in zip(parts, offsets, radii, limits):
            off = np.array(offset, float) * [1.0, sign, 1.0]
            lim = np.array(lim, float)
            if sign < 0:
                lim[[0, 2]] = -lim[[0, 2], ::-1]
            self.set(f"{prefix}_{side}_{part}", off, radius, lim, section, region)


def _quadruped_plan(rng: np.random.Generator) -> _Plan:
    b = _PlanBuilder(SKELETONS["quadruped"])
    body_len, body_r = rng.uniform(0.7, 1.3), rng.uniform(0.14, 0.28)
    leg_len, leg_r = rng.uniform(0.45, 1.0), rng.uniform(0.035, 0.08)
    neck_len, neck_angle = rng.uniform(0.15, 0.6), np.radians(rng.uniform(15, 70))
    head_len, head_r = rng.uniform(0.15, 0.35), rng.uniform(0.08, 0.16)
    tail_len, tail_r, tail_up = rng.uniform(0.15, 0.9), rng.uniform(0.02, 0.07), rng.uniform(-0.6, 0.6)
    width = body_r * rng.uniform(0.5, 0.8)
    chest_r = body_r * rng.uniform(0.9, 1.25)
    b.set("pelvis", (0, 0, leg_len), limits=((-5, 5), (-8, 8), (-8, 8)))
    b.set(
        "spine",
        (body_len / 2, 0, rng.uniform(-0.05, 0.05)),
        (body_r, body_r * 1.05),
        ((-5, 5), (-10, 10), (-12, 12)),
        (1.0, rng.uniform(0.8, 1.1)),
    )
    b.set(
        "chest",
        (body_len / 2, 0, rng.uniform(-0.02, 0.08)),
        (body_r * 1.05, chest_r),
        ((-5, 5), (-10, 10), (-15, 15)),
        (1.0, rng.uniform(0.8, 1.1)),
    )
    b.set("neck", (0.12 * body_len, 0, 0.05), (chest_r * 0.8, chest_r * 0.6), ((-5, 5), (-15, 15), (-20, 20)))
    neck_r = min(chest_r * 0.6, head_r * 1.1)
    b.set(
        "head",
        (neck_len * np.cos(neck_angle), 0, neck_len * np.sin(neck_angle)),
        (neck_r, head_r),
        ((-10, 10), (-35, 25), (-35, 35)),
        region=0,
    )
    b.set(
        "snout",
        (head_len, 0, -head_len * rng.uniform(0.0, 0.5)),
        (head_r, head_r * rng.uniform(0.35, 0.7)),
        ((-10, 10), (-30, 30), (-30, 30)),
        region=2,
    )
    b.set(
        "tail_base", (-0.1 * body_len, 0, 0.02), (body_r * 0.7, tail_r * 1.5), ((-5, 5), (-40, 40), (-40, 40)), region=0
    )
    seg = tail_len / 2
    b.set(
        "tail_mid",
        (-seg * np.cos(tail_up), 0, seg * np.sin(tail_up)),
        (tail_r * 1.5, tail_r),
        ((-10, 10), (-35, 35), (-35, 35)),
        region=1,
    )
    b.set("tail_tip", (-seg * np.cos(tail_up), 0, seg * np.sin(tail_up) * 0.5), (tail_r, tail_r * 0.6), region=3)
    upper, lower, foot = (
        leg_len * rng.uniform(0.4, 0.5),
        leg_len * rng.uniform(0.35, 0.45),
        leg_len * rng.uniform(0.1, 0.2),
    )
    front = [(0.0, width, -0.05), (0.02, 0, -upper), (-0.02, 0, -lower), (foot * 0.6, 0, -foot * 0.8)]
    back = [(0.0, width, -0.05), (0.06, 0, -upper), (-0.08, 0, -lower), (foot * 0.6, 0, -foot * 0.8)]
    radii = [(body_r * 0.6, leg_r * 1.5), (leg_r * 1.5, leg_r), (leg_r, leg_r * 0.8), (leg_r * 0.8, leg_r * 0.9)]
    leg_limits = [
        ((-8, 12), (-35, 35), (-10, 10)),
        ((0, 0), (-45, 20), (0, 0)),
        ((0, 0), (-40, 40), (0, 0)),
        ((0, 0), (-20, 20), (0, 0)),
    ]
    for side in ("l", "r"):
        b.limb("front", ["shoulder", "elbow", "wrist", "paw"], front, radii, leg_limits, side)
        b.limb("back", ["hip", "knee", "ankle", "paw"], back, radii, leg_limits, side)
    b.plan.region[[b.spec.index(f"{p}_{s}_paw") for p in ("front", "back") for s in "lr"]] = 3
    return b.plan


def _biped_plan(rng: np.random.Generator) -> _Plan:
    b = _PlanBuilder(SKELETONS["biped"])
    leg_len, leg_r = rng.uniform(0.6, 1.1), rng.uniform(0.05, 0.1)
    torso, torso_r = rng.uniform(0.4, 0.8), rng.uniform(0.12, 0.22)
    arm_len, arm_r = rng.uniform(0.5, 1.0), rng.uniform(0.035, 0.08)
    head_r, neck_len = rng.uniform(0.09, 0.2), rng.uniform(0.05, 0.2)
    shoulder_w, hip_w = torso_r * rng.uniform(1.0, 1.5), torso_r * rng.uniform(0.5, 0.8)
    b.set("pelvis", (0, 0, leg_len), limits=((-5, 5), (-10, 10), (-10, 10)))
    b.set(
        "spine",
        (0, 0, torso / 2),
        (torso_r * 0.9, torso_r),
        ((-8, 8), (-20, 15), (-20, 20)),
        (rng.uniform(0.6, 0.9), 1.0),
    )
    b.set(
        "chest",
        (0, 0, torso / 2),
        (torso_r, torso_r * rng.uniform(0.9, 1.2)),
        ((-8, 8), (-15, 15), (-20, 20)),
        (rng.uniform(0.6, 0.9), 1.0),
    )
    b.set("neck", (0, 0, 0.04), (torso_r * 0.6, head_r * 0.5), ((-10, 10), (-20, 20), (-25, 25)))
    b.set("head", (0.02, 0, neck_len + head_r), (head_r * 0.5, head_r), ((-15, 15), (-30, 30), (-45, 45)), region=0)
    b.set("head_top", (rng.uniform(0.0, 0.1), 0, head_r), (head_r, head_r * rng.uniform(0.6, 0.95)), region=2)
    upper, fore, hand = arm_len * 0.45, arm_len * 0.4, arm_len * 0.15
    arm = [(0.0, shoulder_w, -0.02), (0, 0, -upper), (0, 0, -fore), (0, 0, -hand)]
    arm_radii = [(torso_r * 0.5, arm_r * 1.2), (arm_r * 1.2, arm_r), (arm_r, arm_r * 0.8), (arm_r * 0.8, arm_r * 0.7)]
    arm_limits = [
        ((5, 85), (-70, 50), (-20, 20)),
        ((0, 0), (-110, 0), (0, 0)),
        ((-20, 20), (-30, 30), (0, 0)),
        ((0, 0), (0, 0), (0, 0)),
    ]
    thigh, shin, foot = leg_len * 0.48, leg_len * 0.46, rng.uniform(0.08, 0.2)
    leg = [(0.0, hip_w, -0.04), (0, 0, -thigh), (0, 0, -shin), (foot, 0, -0.03)]
    leg_radii = [(torso_r * 0.6, leg_r * 1.3), (leg_r * 1.3, leg_r), (leg_r, leg_r * 0.7), (leg_r * 0.7, leg_r * 0.6)]
    leg_limits = [
        ((-5, 30), (-60, 25), (-15, 15)),
        ((0, 0), (0, 90), (0, 0)),
        ((0, 0), (-25, 25), (0, 0)),
        ((0, 0), (0, 0), (0, 0)),
    ]
    for side in ("l", "r"):
        b.limb("arm", ["shoulder", "elbow", "wrist", "hand"], arm, arm_radii, arm_limits, side)
        b.limb("leg", ["hip", "knee", "ankle", "toe"], leg, leg_radii, leg_limits, side)
    b.plan.region[[b.spec.index(n) for n in ("arm_l_hand", "arm_r_hand", "leg_l_toe", "leg_r_toe")]] = 3
    return b.plan


def _bird_plan(rng: np.random.Generator) -> _Plan:
    b = _PlanBuilder(SKELETONS["bird"])
    body_len, body_r = rng.uniform(0.35, 0.7), rng.uniform(0.13, 0.24)
    neck_len, head_r = rng.uniform(0.08, 0.4), rng.uniform(0.07, 0.13)
    beak_len = rng.uniform(0.06, 0.3)
    wing_len, leg_len = rng.uniform(0.5, 1.3), rng.uniform(0.2, 0.6)
    wing_w = rng.uniform(1.5, 2.5)
    b.set("pelvis", (0, 0, leg_len), limits=((-5, 5), (-15, 15), (-10, 10)))
    b.set(
        "chest",
        (body_len, 0, body_len * rng.uniform(0.0, 0.4)),
        (body_r * 0.8, body_r),
        ((-5, 5), (-15, 15), (-10, 10)),
        (1.0, rng.uniform(0.8, 1.0)),
    )
    b.set("neck", (0.05, 0, 0.05 + body_r * 0.4), (body_r * 0.7, head_r * 0.6), ((-5, 5), (-20, 20), (-20, 20)))
    b.set("head", (neck_len * 0.3, 0, neck_len), (head_r * 0.6, head_r), ((-15, 15), (-40, 40), (-50, 50)), region=0)
    b.set("beak", (beak_len + head_r * 0.5, 0, -beak_len * rng.uniform(0.0, 0.4)), (head_r * 0.45, 0.008), region=2)
    b.set(
        "tail",
        (-rng.uniform(0.2, 0.5), 0, rng.uniform(-0.05, 0.15)),
        (body_r * 0.6, body_r * 0.25),
        ((-5, 5), (-30, 20), (-20, 20)),
        (0.3, rng.uniform(2.0, 3.5)),
        region=3,
    )
    upper, fore, hand = wing_len * 0.3, wing_len * 0.3, wing_len * 0.4
    wing = [(0.0, body_r * 0.8, 0.05), (-0.02, upper, 0), (0.02, fore, 0), (-0.05, hand, 0)]
    wing_radii = [(body_r * 0.4, 0.06), (0.06, 0.05), (0.05, 0.04), (0.04, 0.015)]
    # roll = flap (up/down), yaw = fold towards the tail
    wing_limits = [
        ((-40, 50), (-15, 15), (-60, 10)),
        ((-20, 20), (-10, 10), (-90, 0)),
        ((-20, 20), (-10, 10), (0, 100)),
        ((0, 0), (0, 0), (-15, 15)),
    ]
    thigh, shin, foot = leg_len * 0.45, leg_len * 0.45, rng.uniform(0.05, 0.15)
    leg = [(0.0, body_r * 0.4, -body_r * 0.5), (0.05, 0, -thigh), (-0.06, 0, -shin), (foot, 0, -0.02)]
    leg_r = rng.uniform(0.015, 0.035)
    leg_radii = [(body_r * 0.4, leg_r * 1.6), (leg_r * 1.6, leg_r), (leg_r, leg_r * 0.8), (leg_r * 0.8, leg_r * 0.6)]
    leg_limits = [
        ((-5, 15), (-30, 30), (-10, 10)),
        ((0, 0), (-30, 30), (0, 0)),
        ((0, 0), (-30, 30), (0, 0)),
        ((0, 0), (-20, 20), (0, 0)),
    ]
    for side in ("l", "r"):
        b.limb(
            "wing", ["shoulder", "elbow", "wrist", "tip"], wing, wing_radii, wing_limits, side, section=(0.35, wing_w)
        )
        b.limb("leg", ["hip", "knee", "ankle", "toe"], leg, leg_radii, leg_limits, side, region=3)
    return b.plan


def _limbtree_plan(rng: np.random.Generator) -> _Plan:
    b = _PlanBuilder(SKELETONS["limbtree"])
    body_r = rng.uniform(0.15, 0.3)
    b.set("body", (0, 0, 1.0), limits=((-10, 10), (-10, 10), (-10, 10)))
    head_dir = _unit(rng.normal([1.0, 0.0, 0.6], 0.3))
    b.set(
        "head",
        head_dir * body_r * rng.uniform(1.2, 2.0),
        (body_r * 0.8, body_r * rng.uniform(0.4, 0.8)),
        ((-15, 15), (-30, 30), (-30, 30)),
        region=2,
    )
    limb_r = rng.uniform(0.03, 0.07)
    for i in range(LIMBTREE_LIMBS):
        # limbs spread around the body, pointing outwards and mostly downwards
        angle = 2 * np.pi * (i + rng.uniform(-0.25, 0.25)) / LIMBTREE_LIMBS
        direction = _unit(np.array([np.cos(angle), np.sin(angle), rng.uniform(-1.2, 0.3)]))
        b.set(
            f"limb{i}_j0", direction * body_r * 0.6, (body_r, limb_r * 1.5), ((-10, 10), (-10, 10), (-10, 10)), region=0
        )
        length = rng.uniform(0.25, 0.6)
        for k in range(1, LIMBTREE_SEGMENTS + 1):
            direction = _unit(direction + rng.normal(0.0, 0.4, 3))
            r0, r1 = limb_r * (1.5 - 0.3 * (k - 1)), limb_r * (1.5 - 0.3 * k)
            lim = 35.0 if k < LIMBTREE_SEGMENTS else 0.0
            b.set(
                f"limb{i}_j{k}",
                direction * length / LIMBTREE_SEGMENTS * rng.uniform(0.7, 1.3),
                (r0, r1),
                ((-lim, lim),) * 3,
                region=3 if k == LIMBTREE_SEGMENTS else 1,
            )
    return b.plan


_PLANS = {"quadruped": _quadruped_plan, "biped": _biped_plan, "bird": _bird_plan, "limbtree": _limbtree_plan}


# --------------------------------------------------------------------------- accessories


@dataclass(frozen=True)
class _Accessory:
    """A part with no joint of its own (ears, horns, crest, ...), rigidly attached to joint `joint`.

    Ends a, b are offsets in the joint's frame in units of the radius of the bone ending at the
    joint; `mirror` adds the copy with y negated. They make the surface richer than "one blob per
    joint", as artist-made creatures are.
    """

    joint: str
    probability: float
    a: tuple[float, float, float]
    b: tuple[float, float, float]
    radii: tuple[float, float]
    section: tuple[float, float] = (1.0, 1.0)
    mirror: bool = False
    region: int = 2


def _accessory_specs(category: str, rng: np.random.Generator) -> list[_Accessory]:
    """This creature's accessories (random sizes; each present with its probability)."""
    u = rng.uniform
    specs = {
        "quadruped": [
            _Accessory(
                "head", 0.6, (-0.2, 0.5, 0.7), (-u(0.3, 0.8), u(0.8, 1.4), u(1.6, 2.6)), (0.3, 0.08), (0.4, 1.6), True
            ),
            _Accessory(
                "head",
                0.25,
                (0.1, 0.4, 0.8),
                (-u(0.4, 1.2), u(0.8, 1.6), u(1.8, 3.0)),
                (0.2, 0.03),
                mirror=True,
                region=3,
            ),
        ],
        "biped": [
            _Accessory(
                "head", 0.35, (0.0, 0.8, 0.3), (-u(0.0, 0.4), u(1.3, 1.9), u(0.6, 1.4)), (0.3, 0.12), (0.4, 1.4), True
            ),
            _Accessory(
                "head",
                0.2,
                (0.1, 0.4, 0.8),
                (-u(0.2, 0.8), u(0.6, 1.2), u(1.6, 2.6)),
                (0.2, 0.03),
                mirror=True,
                region=3,
            ),
            _Accessory("spine", 0.4, (0.3, 0.0, -0.6), (u(0.3, 0.6), 0.0, 0.6), (u(0.8, 1.1), u(0.8, 1.1)), region=0),
        ],
        "bird": [
            _Accessory("head", 0.4, (-0.2, 0.0, 0.8), (-u(0.8, 1.6), 0.0, u(1.6, 2.6)), (0.3, 0.05), (1.5, 0.3)),
            *[
                _Accessory(
                    "tail",
                    0.5,
                    (0.0, 0.0, 0.0),
                    (-u(3.0, 5.0), k * u(1.0, 2.0), 0.0),
                    (0.5, 0.8),
                    (0.25, 1.8),
                    region=3,
                )
                for k in (-1.0, 0.0, 1.0)
            ],
        ],
        "limbtree": [
            _Accessory("head", 0.5, tuple(0.7 * d), tuple(u(1.3, 1.8) * d), (0.25, 0.03), region=3)
            for d in (_unit(rng.normal([0.0, 0.0, 1.0], 0.6)) for _ in range(int(rng.integers(2, 6))))
        ],
    }[category]
    present = rng.uniform(size=len(specs)) < [s.probability for s in specs]
    return [s for s, keep in zip(specs, present) if keep]


def _accessory_parts(
    specs: list[_Accessory], plan: _Plan, spec: SkeletonSpec, joints: np.ndarray, rotations: np.ndarray
) -> list[tuple[Capsule, int]]:
    parts = []
    for acc in specs:
        j = spec.index(acc.joint)
        r = float(plan.radii[j, 1])
        for sign in (1.0, -1.0) if acc.mirror else (1.0,):
            flip = np.array([1.0, sign, 1.0])
            a = joints[j] + rotations[j] @ (np.array(acc.a) * flip * r)
            b = joints[j] + rotations[j] @ (np.array(acc.b) * flip * r)
            up = rotations[j] @ np.array([0.0, 0.0, 1.0])
            parts.append((Capsule(a, b, acc.radii[0] * r, acc.radii[1] * r, up, *acc.section), acc.region))
    return parts


# --------------------------------------------------------------------------- kinematics


def _unit(v: np.ndarray) -> np.ndarray:
    return np.asarray(v, float) / np.linalg.norm(v)


def _euler(angles_deg: np.ndarray) -> np.ndarray:
    """R = Rz(yaw) Ry(pitch) Rx(roll) for angles (3,) in degrees (roll, pitch, yaw)."""
    x, y, z = np.radians(angles_deg)
    cx, sx, cy, sy, cz, sz = np.cos(x), np.sin(x), np.cos(y), np.sin(y), np.cos(z), np.sin(z)
    Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def _forward_kinematics(
    plan: _Plan, parents: tuple[int, ...], angles: np.ndarray, root_rotation: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Joint positions (J, 3) and global rotations (J, 3, 3) for per-joint angles (J, 3) in degrees."""
    J = len(parents)
    pos, rot = np.zeros((J, 3)), np.zeros((J, 3, 3))
    for j, p in enumerate(parents):
        local = _euler(angles[j])
        if p < 0:
            pos[j], rot[j] = root_rotation @ plan.offsets[j], root_rotation @ local
        else:
            pos[j], rot[j] = pos[p] + rot[p] @ plan.offsets[j], rot[p] @ local
    return pos, rot


# --------------------------------------------------------------------------- appearance


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1))))


def _region_colors(rng: np.random.Generator) -> np.ndarray:
    """(5, 3) colours: regions 0..3 (body, limbs, head, extremities) and 4 = pattern colour."""
    hue = rng.uniform()
    base = _hsv(hue, rng.uniform(0.2, 0.9), rng.uniform(0.35, 0.95))
    limbs = (
        _hsv(hue + rng.normal(0, 0.05), rng.uniform(0.2, 0.9), rng.uniform(0.3, 0.9)) if rng.uniform() < 0.5 else base
    )
    head = (
        _hsv(hue + rng.normal(0, 0.08), rng.uniform(0.2, 0.9), rng.uniform(0.35, 0.95)) if rng.uniform() < 0.5 else base
    )
    extremities = _hsv(rng.uniform(), rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9))
    pattern = _hsv(hue + rng.uniform(0.3, 0.7), rng.uniform(0.2, 1.0), rng.uniform(0.1, 1.0))
    return np.stack([base, limbs, head, extremities, pattern]).astype(np.float32)


def _apply_pattern(
    rng: np.random.Generator,
    points: np.ndarray,
    colors: np.ndarray,
    pattern_color: np.ndarray,
    bounds: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Stripes, spots, a belly gradient or nothing, as per-vertex colour (points in the build frame).

    bounds: the shape's bounding box (lo, hi), which sets the pattern's scale and placement.
    """
    kind = rng.choice(["plain", "stripes", "spots", "gradient"], p=[0.25, 0.3, 0.3, 0.15])
    lo, hi = bounds
    scale = float((hi - lo).max())
    if kind == "stripes":
        direction = _unit(rng.normal(size=3))
        period = scale * rng.uniform(0.08, 0.2)
        mask = np.sin(2 * np.pi * points @ direction / period + rng.uniform(0, 2 * np.pi)) > rng.uniform(-0.3, 0.5)
    elif kind == "spots":
        centres = rng.uniform(lo, hi, size=(int(rng.integers(8, 40)), 3))
        radius = scale * rng.uniform(0.03, 0.08)
        dist = np.min(np.linalg.norm(points[:, None] - centres[None], axis=-1), axis=1)
        mask = dist < radius
    elif kind == "gradient":
        w = np.clip((hi[2] - points[:, 2]) / max(hi[2] - lo[2], 1e-9), 0, 1)[:, None] ** 2
        return (colors * (1 - w) + pattern_color * w).astype(np.float32)
    else:
        return colors
    out = colors.copy()
    out[mask] = pattern_color
    return out


# --------------------------------------------------------------------------- assembly


def _seed_sequence(category: str, seed: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([zlib.crc32(category.encode()), int(seed)])


def generate_creature(
    category: str, seed: int, *, yaw_deg: float | None = None, rest_pose: bool = False, detail: float = 1.0
) -> Creature:
    """A random creature of `category` (one of CATEGORIES), deterministic in (category, seed).

    yaw_deg: turn about the world z axis (default: random in [0, 360)); rest_pose: all joint
    rotations zero (proportions and colours are still random); detail: mesh density (1.0 ~ 10k
    triangles, fine at 576 px; 0.5 ~ 3k triangles is plenty at 128 px). Only the mesh density
    depends on `detail`: joints, colours and shape are the same.
    """
    if category not in SKELETONS:
        raise InputError(f"unknown creature category '{category}'; choose one of {', '.join(CATEGORIES)}")
    rng = np.random.default_rng(_seed_sequence(category, seed))
    spec = SKELETONS[category]
    plan = _PLANS[category](rng)
    angles = rng.uniform(plan.limits[..., 0], plan.limits[..., 1])
    if rest_pose:
        angles[:] = 0.0
    yaw = rng.uniform(0.0, 360.0)
    root_rotation = _euler(np.array([0.0, 0.0, yaw if yaw_deg is None else yaw_deg]))
    joints, rotations = _forward_kinematics(plan, spec.parents, angles, root_rotation)

    parts, part_region = [], []
    for parent, child in spec.bones:
        ra, rb = plan.radii[child]
        up = rotations[parent] @ np.array([0.0, 0.0, 1.0])  # section "thick" axis follows the parent's up
        parts.append(Capsule(joints[parent], joints[child], float(ra), float(rb), up, *map(float, plan.section[child])))
        part_region.append(plan.region[child])
    # accessories come from their own stream, so adding them kept every other draw unchanged
    accessory_rng = np.random.default_rng(_seed_sequence(category, seed).spawn(1)[0])
    for part, region in _accessory_parts(_accessory_specs(category, accessory_rng), plan, spec, joints, rotations):
        parts.append(part)
        part_region.append(region)

    region_colors = _region_colors(rng)
    verts, faces, colors, offset = [], [], [], 0
    for part, region in zip(parts, part_region):
        v, f = part.mesh(
            segments=max(6, round(16 * detail)), cap_rings=max(2, round(4 * detail)), ring_spacing=0.04 / detail
        )
        verts.append(v)
        faces.append(f + offset)
        colors.append(np.broadcast_to(region_colors[region], v.shape))
        offset += len(v)
    vertices = np.concatenate(verts)
    # placement and pattern depend on the shape only, not on the mesh density
    reference = np.concatenate([part.mesh()[0] for part in parts]) if detail != 1.0 else vertices
    bounds = (reference.min(0), reference.max(0))
    vertex_colors = _apply_pattern(rng, vertices, np.concatenate(colors).astype(np.float32), region_colors[4], bounds)

    placement = fit_to_world(reference)
    offset_world = -placement.center * placement.scale
    return Creature(
        category=category,
        seed=int(seed),
        vertices=placement.to_world(vertices).astype(np.float32),
        faces=np.concatenate(faces).astype(np.int32),
        vertex_colors=np.clip(vertex_colors, 0, 1).astype(np.float32),
        joints=placement.to_world(joints).astype(np.float32),
        joint_names=list(spec.joint_names),
        parents=np.array(spec.parents, np.int32),
        bones=spec.bones,
        parts=[p.transformed(placement.scale, offset_world) for p in parts],
        placement=placement,
    )


def creature_sdf(creature: Creature, points: np.ndarray) -> np.ndarray:
    """Approximate signed distance (N,) to the union of the creature's parts (world frame)."""
    points = np.asarray(points, np.float64)
    return np.min(np.stack([p.sdf(points) for p in creature.parts]), axis=0)


def watertight_mesh(creature: Creature, resolution: int = 96):
    """A closed, single-surface `trimesh.Trimesh` of the union of the parts (marching cubes of the SDF).

    Vertex colours come from the nearest vertex of the triangle soup. Cost grows with resolution^3
    (96: ~1 s on one core).
    """
    import trimesh
    from scipy.spatial import cKDTree
    from skimage.measure import marching_cubes

    lo = creature.vertices.min(0) - 0.05
    hi = creature.vertices.max(0) + 0.05
    step = float((hi - lo).max()) / (resolution - 1)
    axes = [np.arange(lo[k], hi[k] + step, step) for k in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    sdf = creature_sdf(creature, grid).reshape(len(axes[0]), len(axes[1]), len(axes[2]))
    verts, faces, _, _ = marching_cubes(sdf, level=0.0, spacing=(step, step, step))
    verts = verts + lo
    _, nearest = cKDTree(creature.vertices).query(verts)
    colors = np.concatenate([creature.vertex_colors[nearest], np.ones((len(verts), 1), np.float32)], 1)
    # marching_cubes orders faces for a field that increases outwards; flip to outward winding
    mesh = trimesh.Trimesh(verts, faces[:, ::-1], vertex_colors=(colors * 255).round().astype(np.uint8), process=True)
    if mesh.volume < 0:
        mesh.invert()
    return mesh
