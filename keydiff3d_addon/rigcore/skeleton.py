"""Armature from keypoints + learned adjacency: maximum spanning tree, root, bones, names, roll.

Numpy + stdlib only (runs inside Blender's Python through the add-on's `rigcore` link).

Frames: keypoints are (N, 3) in the bundle's world frame. `up_axis` "Z" (default) or "Y" names the
frame's up direction; every orientation rule (roll, naming, ground) is evaluated after bringing a
"Y"-up frame to Z-up with (x, y, z) -> (x, -z, y), as Blender's glTF importer does.

Documented repairs (recorded in `Skeleton.repairs`, never silent):
- asymmetric adjacency -> (A + A^T) / 2; negative entries -> 0; the diagonal is ignored;
- all-zero adjacency -> the Euclidean minimum spanning tree (every weight ties, ties -> shorter edge);
- coincident keypoints (a bone shorter than `min_bone_fraction` x skeleton extent) -> the child
  keypoint is nudged along its parent bone's direction (or up) to that length, because Blender
  deletes zero-length bones;
- keypoints outside the mesh (when `inside` is given) -> a repair note; moving them is the caller's
  choice (the backend projects them inside before calling).
NaN/inf, N < 2 and shape mismatches raise `SkeletonError` (a ValueError).
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .frames import UP_AXES, from_z_up, to_z_up
from .naming import Mirror, Naming, chain_names, tip_name

log = logging.getLogger(__name__)

BONE_KINDS = ("edge", "leaf", "root")
ROOT_BONE_NAME = "root"


class SkeletonError(ValueError):
    """Keypoints or adjacency that cannot be turned into a skeleton (one clear sentence)."""


@dataclass
class Bone:
    """One armature bone. head/tail (3,) in the world frame; `keypoint` = child keypoint it ends at
    (-1 for the root bone; for a leaf bone the leaf keypoint it extends)."""

    name: str
    head: np.ndarray
    tail: np.ndarray
    parent: str | None
    keypoint: int
    deform: bool = True
    roll: float = 0.0  # radians, Blender's edit-bone roll (see `bone_roll`)
    kind: str = "edge"  # "edge" | "leaf" | "root"
    connected: bool = False

    @property
    def length(self) -> float:
        return float(np.linalg.norm(np.asarray(self.tail) - np.asarray(self.head)))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "head": [float(v) for v in self.head],
            "tail": [float(v) for v in self.tail],
            "parent": self.parent,
            "keypoint": int(self.keypoint),
            "deform": bool(self.deform),
            "roll": float(self.roll),
            "kind": self.kind,
            "connected": bool(self.connected),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Bone":
        return cls(
            name=str(data["name"]),
            head=np.asarray(data["head"], np.float64),
            tail=np.asarray(data["tail"], np.float64),
            parent=data.get("parent"),
            keypoint=int(data["keypoint"]),
            deform=bool(data.get("deform", True)),
            roll=float(data.get("roll", 0.0)),
            kind=str(data.get("kind", "edge")),
            connected=bool(data.get("connected", False)),
        )


@dataclass
class Skeleton:
    """keypoints (N, 3) float64 (after repairs), adjacency (N, N) symmetric >= 0 (after repairs),
    root keypoint index, parents (N,) int with -1 at the root, bones parent-first. `decisions`
    records what the builder chose beyond the adjacency (rig.json's provenance "skeleton"): tree
    edges the priors changed ("prior_changes") and tip bones the mesh shortened ("tips_shortened")."""

    keypoints: np.ndarray
    adjacency: np.ndarray
    root: int
    parents: np.ndarray
    bones: list[Bone]
    repairs: list[str] = field(default_factory=list)
    decisions: dict = field(default_factory=dict)

    def deform_bones(self) -> list[Bone]:
        return [b for b in self.bones if b.deform]

    def bone_names(self, deform_only: bool = False) -> list[str]:
        return [b.name for b in (self.deform_bones() if deform_only else self.bones)]

    def bone(self, name: str) -> Bone:
        for b in self.bones:
            if b.name == name:
                return b
        raise KeyError(name)

    def edges(self) -> list[tuple[int, int]]:
        """Tree edges as (parent keypoint, child keypoint)."""
        return [(int(p), i) for i, p in enumerate(self.parents) if p >= 0]

    def to_dict(self) -> dict:
        """The rig.json "skeleton" section (keypoints and adjacency live at the top level)."""
        return {
            "root_keypoint": int(self.root),
            "parents": [int(p) for p in self.parents],
            "bones": [b.to_dict() for b in self.bones],
        }

    @classmethod
    def from_dict(cls, data: dict, keypoints, adjacency) -> "Skeleton":
        return cls(
            keypoints=np.asarray(keypoints, np.float64),
            adjacency=np.asarray(adjacency, np.float64),
            root=int(data["root_keypoint"]),
            parents=np.asarray(data["parents"], np.int64),
            bones=[Bone.from_dict(b) for b in data["bones"]],
        )


# --------------------------------------------------------------------------- input checks


def clean_adjacency(adjacency, n: int, repairs: list[str] | None = None) -> np.ndarray:
    """Validate and repair an (n, n) adjacency: finite, symmetric (averaged), >= 0 (clipped), zero
    diagonal. Each repair appends a sentence to `repairs`."""
    repairs = [] if repairs is None else repairs
    a = np.asarray(adjacency, np.float64)
    if a.shape != (n, n):
        raise SkeletonError(f"adjacency must be {n} x {n} for {n} keypoints, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise SkeletonError("adjacency contains NaN or infinite values")
    a = a.copy()
    np.fill_diagonal(a, 0.0)
    if not np.allclose(a, a.T, rtol=1e-6, atol=1e-9):
        repairs.append("adjacency was not symmetric; used (A + A^T) / 2")
    a = 0.5 * (a + a.T)
    if (a < 0).any():
        repairs.append(f"adjacency had {int((a < 0).sum()) // 2} negative edge weights; clipped to 0")
        a = np.clip(a, 0.0, None)
    return a


def check_keypoints(keypoints) -> np.ndarray:
    k = np.asarray(keypoints, np.float64)
    if k.ndim != 2 or k.shape[1] != 3:
        raise SkeletonError(f"keypoints must be an N x 3 array, got shape {k.shape}")
    if len(k) < 2:
        raise SkeletonError(f"a skeleton needs at least 2 keypoints, got {len(k)}")
    if not np.isfinite(k).all():
        raise SkeletonError("keypoints contain NaN or infinite values")
    return k


# --------------------------------------------------------------------------- spanning tree


def maximum_spanning_tree(adjacency, keypoints, edge_penalty=None) -> list[tuple[int, int]]:
    """Prim's maximum-weight spanning tree over the complete graph on N keypoints.

    Edge score = adjacency[i, j] - edge_penalty[i, j]; equal scores -> the shorter edge (Euclidean
    length), then the lower index. Zero-weight edges are edges too, so the tree always spans.
    Returns N-1 edges (i, j) with i already in the tree when j was added (i.e. i is nearer node 0).
    """
    points = np.asarray(keypoints, np.float64)
    score = np.asarray(adjacency, np.float64).copy()
    if edge_penalty is not None:
        score = score - np.asarray(edge_penalty, np.float64)
    n = len(points)
    length = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)
    in_tree = np.zeros(n, bool)
    in_tree[0] = True
    best_score, best_len, best_from = score[0].copy(), length[0].copy(), np.zeros(n, np.int64)
    edges: list[tuple[int, int]] = []
    for _ in range(n - 1):
        out = np.flatnonzero(~in_tree)
        # lexsort: last key is primary -> highest score, then shortest, then lowest index
        v = int(out[np.lexsort((out, best_len[out], -best_score[out]))[0]])
        edges.append((int(best_from[v]), v))
        in_tree[v] = True
        better = (score[v] > best_score) | ((score[v] == best_score) & (length[v] < best_len))
        better &= ~in_tree
        best_score[better], best_len[better], best_from[better] = score[v][better], length[v][better], v
    return edges


def volume_penalty(keypoints, inside: Callable[[np.ndarray], np.ndarray], samples: int = 8) -> np.ndarray:
    """(N, N) fraction of each keypoint-pair segment's interior samples that lie outside the volume."""
    k = np.asarray(keypoints, np.float64)
    n = len(k)
    i, j = np.triu_indices(n, 1)
    t = (np.arange(1, samples + 1) / (samples + 1))[None, :, None]
    points = k[i][:, None, :] * (1 - t) + k[j][:, None, :] * t  # (pairs, samples, 3)
    outside = ~np.asarray(inside(points.reshape(-1, 3)), bool).reshape(len(i), samples)
    penalty = np.zeros((n, n))
    penalty[i, j] = penalty[j, i] = outside.mean(1)
    return penalty


def length_penalty(keypoints) -> np.ndarray:
    """(N, N) length of each keypoint-pair segment / keypoint extent, where extent = the largest side
    of the keypoints' axis-aligned bounding box (1 when all keypoints coincide)."""
    k = np.asarray(keypoints, np.float64)
    extent = float(np.ptp(k, axis=0).max())
    return np.linalg.norm(k[:, None, :] - k[None, :, :], axis=-1) / (extent if extent > 0 else 1.0)


def edge_penalty(
    keypoints,
    adjacency,
    *,
    inside: Callable[[np.ndarray], np.ndarray] | None = None,
    volume_weight: float = 1.0,
    length_weight: float = 0.0,
    margin: float | None = None,
) -> np.ndarray | None:
    """(N, N) amount `build_skeleton` subtracts from the adjacency before `maximum_spanning_tree`,
    or None when there is nothing to subtract (no `inside` test and `length_weight` 0):

        penalty[i, j] = volume_weight * m * outside(i, j)          (only when `inside` is given)
                      + length_weight * m * |k_i - k_j| / extent
        m = max(max(adjacency), 1e-12)

    so an edge's score is a_ij - penalty[i, j]. outside(i, j) = `volume_penalty` (fraction of the
    segment's samples outside the volume), extent = largest side of the keypoints' bounding box
    (`length_penalty`). Both priors are scaled by the strongest learned edge, so the weights are
    independent of the adjacency's scale. keypoints (N, 3), adjacency (N, N) already cleaned
    (`clean_adjacency`); `inside(points (M, 3)) -> (M,) bool`.

    margin: the priors may break near-ties only. The penalty is capped at margin * m, so an edge
    whose learned weight exceeds another's by more than margin * m keeps its place before it in
    every comparison of Prim's algorithm: a prior can swap two edges only when their learned weights
    are within margin * m of each other (a strong given edge is never replaced by a weak one).
    """
    if not (isinstance(length_weight, numbers.Real) and math.isfinite(length_weight) and length_weight >= 0):
        raise SkeletonError(f"length_weight must be a finite number >= 0, got {length_weight!r}")
    k = np.asarray(keypoints, np.float64)
    scale = max(float(np.max(adjacency)), 1e-12)
    penalty = None
    if inside is not None:
        penalty = volume_weight * scale * volume_penalty(k, inside)
    if length_weight > 0:
        lengths = length_weight * scale * length_penalty(k)
        penalty = lengths if penalty is None else penalty + lengths
    if margin is not None and penalty is not None:
        if not (math.isfinite(margin) and margin >= 0):
            raise SkeletonError(f"the priors' margin must be a finite number >= 0, got {margin!r}")
        penalty = np.minimum(penalty, margin * scale)
    return penalty


def tree_parents(n: int, edges: Sequence[tuple[int, int]], root: int) -> np.ndarray:
    """Parent of each node when the tree is hung from `root` (-1 at the root)."""
    neighbours = _neighbours(n, edges)
    parents = np.full(n, -2, np.int64)
    parents[root] = -1
    stack = [root]
    while stack:
        u = stack.pop()
        for v in neighbours[u]:
            if parents[v] == -2:
                parents[v] = u
                stack.append(v)
    if (parents == -2).any():
        raise SkeletonError("the edges do not form a spanning tree")
    return parents


def tree_center(keypoints, edges: Sequence[tuple[int, int]]) -> int:
    """The node with the smallest eccentricity measured in bone length along the tree (ties -> fewer
    hops, then the lower index). For a limb-symmetric creature this is a body-centre keypoint."""
    k = np.asarray(keypoints, np.float64)
    n = len(k)
    neighbours = _neighbours(n, edges)
    best = None
    for s in range(n):
        dist, hops = np.full(n, np.inf), np.zeros(n, np.int64)
        dist[s] = 0.0
        stack = [s]
        while stack:
            u = stack.pop()
            for v in neighbours[u]:
                if not np.isfinite(dist[v]):
                    dist[v] = dist[u] + float(np.linalg.norm(k[v] - k[u]))
                    hops[v] = hops[u] + 1
                    stack.append(v)
        key = (round(float(dist.max()), 9), int(hops.max()), s)
        best = key if best is None or key < best else best
    return best[2]


def _neighbours(n: int, edges: Sequence[tuple[int, int]]) -> list[list[int]]:
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for a, b in edges:
        neighbours[a].append(b)
        neighbours[b].append(a)
    for row in neighbours:
        row.sort()
    return neighbours


# --------------------------------------------------------------------------- roll


def bone_rest_z_axis(direction) -> np.ndarray:
    """Blender's bone z axis at roll 0: the minimal rotation taking +Y onto `direction` applied to
    +Z (a bone pointing straight down -Y uses the 180 deg turn about +Z, as Blender does)."""
    d = np.asarray(direction, np.float64)
    d = d / np.linalg.norm(d)
    y = np.array([0.0, 1.0, 0.0])
    c = float(d @ y)
    if c < 0 and d[0] ** 2 + d[2] ** 2 <= 2.5e-4**2:  # Blender's singular zone around -Y
        return np.array([0.0, 0.0, 1.0])
    k = np.cross(y, d)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rotation = np.eye(3) + kx + kx @ kx / (1.0 + c)
    return rotation @ np.array([0.0, 0.0, 1.0])


def bone_roll(head, tail, vertical_degrees: float = 30.0) -> float:
    """Deterministic roll (radians, z-up frame): the bone's z axis points to world +Z projected
    perpendicular to the bone; for bones within `vertical_degrees` of vertical (legs, spines) it
    points to world -Y (Blender's front) projected instead, so knees and elbows bend about local X."""
    d = np.asarray(tail, np.float64) - np.asarray(head, np.float64)
    d = d / np.linalg.norm(d)
    target = np.array([0.0, 0.0, 1.0])
    if abs(d[2]) > math.cos(math.radians(vertical_degrees)):
        target = np.array([0.0, -1.0, 0.0])
    target = target - (target @ d) * d
    target /= np.linalg.norm(target)
    z0 = bone_rest_z_axis(d)
    return float(math.atan2(float(np.cross(z0, target) @ d), float(z0 @ target)))


# --------------------------------------------------------------------------- build


def build_skeleton(
    keypoints,
    adjacency,
    *,
    root: str | int = "center",
    leaf_bones: bool = False,
    leaf_fraction: float = 0.5,
    root_bone: bool = False,
    ground: float | None = None,
    inside: Callable[[np.ndarray], np.ndarray] | None = None,
    tip_inside: Callable[[np.ndarray], np.ndarray] | None = None,
    volume_weight: float = 1.0,
    length_weight: float = 0.0,
    prior_margin: float | None = None,
    naming: Naming | None = None,
    mirror: Mirror | None = None,
    thickness=None,
    up_axis: str = "Z",
    min_bone_fraction: float = 1e-3,
) -> Skeleton:
    """Skeleton from keypoints (N, 3) and learned adjacency (N, N): the maximum spanning tree hung
    from `root` ("center" = `tree_center`, or a keypoint index), one deform bone per tree edge (head =
    parent keypoint, tail = child keypoint), optional virtual leaf bones (`leaf_fraction` x the leaf's
    bone length beyond each leaf keypoint), optional non-deforming "root" bone on the ground below the
    keypoints' bbox centre (ground height = `ground` or the lowest keypoint) that parents the bones
    leaving the root keypoint.

    Edge score (see `edge_penalty`), with m = max of the cleaned adjacency and extent = the largest
    side of the keypoints' bounding box:

        score[i, j] = a_ij - volume_weight * m * outside(i, j) - length_weight * m * |k_i - k_j| / extent

    `inside(points (M, 3)) -> (M,) bool` enables the volume term (outside(i, j) = fraction of the
    segment outside the volume); without it the term is 0. The length term is a geometric prior
    against long cross-body bones; `length_weight` 0 (the default: larger weights shortened bones
    but did not bring trees closer to true skeletons, docs/bench/skeleton.md) leaves the learned
    tree unchanged. `prior_margin` (see `edge_penalty`'s margin) limits both priors to breaking
    near-ties of the adjacency: used when the adjacency is given (it names the edges) rather than
    predicted. Tree edges the priors changed are listed in `decisions["prior_changes"]`.

    One bone parents the whole rig: the ground "root" bone when `root_bone`, else, when more than
    one bone leaves the root keypoint, a short non-deforming "root" bone at the root keypoint.
    With `tip_inside` (default `inside`; a finer test pays off here, few points are tested) leaf
    bones are shortened to stay inside the mesh (16 samples along the bone); with `ground`, to stay
    above it; never below `min_bone_fraction` x the skeleton extent (`decisions["tips_shortened"]`:
    bone -> fraction of its length kept).

    Names (`naming`, rigcore.naming.chain_names): `mirror` gives the keypoints' left/right pairs and
    the plane (z-up frame) when the caller knows them (the backend finds the plane on the mesh's rest
    surface); without it the plane is searched on the keypoints. `thickness` (N,): the body's
    thickness at each keypoint, which tells the head end from the tail end when neither rises.
    """
    naming = naming or Naming()
    if naming.style not in ("auto", "index"):
        raise SkeletonError(f"naming style must be 'auto' or 'index', got {naming.style!r}")
    if up_axis not in UP_AXES:
        raise SkeletonError(f"up_axis must be 'Z' or 'Y', got {up_axis!r}")
    repairs: list[str] = []
    k = check_keypoints(keypoints).copy()
    n = len(k)
    a = clean_adjacency(adjacency, n, repairs)
    if not (a > 0).any():
        repairs.append("adjacency is all zero; used the Euclidean minimum spanning tree")
    if inside is not None:
        flags = np.asarray(inside(k), bool)
        if not flags.all():
            outside = np.flatnonzero(~flags).tolist()
            repairs.append(f"keypoints {outside} lie outside the mesh")
    penalty = edge_penalty(
        k, a, inside=inside, volume_weight=volume_weight, length_weight=length_weight, margin=prior_margin
    )
    edges = maximum_spanning_tree(a, k, penalty)
    decisions: dict = {}
    if penalty is not None:
        decisions["prior_changes"] = _prior_changes(maximum_spanning_tree(a, k), edges, a, penalty)
    if isinstance(root, str):
        if root != "center":
            raise SkeletonError(f"root must be 'center' or a keypoint index, got {root!r}")
        root_index = tree_center(k, edges)
    else:
        root_index = int(root)
        if not 0 <= root_index < n:
            raise SkeletonError(f"root keypoint {root_index} is out of range for {n} keypoints")
    parents = tree_parents(n, edges, root_index)
    order = _parent_first(parents, root_index)
    _nudge_coincident(k, parents, order, up_axis, min_bone_fraction, repairs)

    kz = to_z_up(k, up_axis)
    try:
        names = chain_names(kz, parents, root_index, naming, mirror, thickness) if naming.style == "auto" else None
    except ValueError as error:
        raise SkeletonError(f"the given mirror pairs do not fit the tree: {error}") from None
    auto = names is not None
    if names is None:
        names = {kp: f"bone_{i:02d}" for i, kp in enumerate(order[1:], 1)}

    bones: list[Bone] = []
    bone_of: dict[int, str] = {}  # child keypoint -> its edge bone
    root_name = None
    lo, hi = kz.min(0), kz.max(0)
    size = max(float((hi - lo).max()), 1e-6)
    if root_bone or int((parents == root_index).sum()) > 1:
        if root_bone:  # on the ground below the keypoints' bounding-box centre, pointing +Y
            ground_z = float(kz[:, 2].min()) if ground is None else float(ground)
            head_z = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, ground_z])
            tail_z = head_z + np.array([0.0, 0.25 * size, 0.0])
        else:  # a hub at the root keypoint, pointing up: the bones leaving it get one parent
            head_z = kz[root_index].copy()
            tail_z = head_z + np.array([0.0, 0.0, 0.1 * size])
        head, tail = from_z_up(head_z, up_axis), from_z_up(tail_z, up_axis)
        root_name = ROOT_BONE_NAME
        bones.append(Bone(root_name, head, tail, None, -1, False, bone_roll(head_z, tail_z), "root", False))
    for kp in order[1:]:
        p = int(parents[kp])
        parent_name = bone_of.get(p, root_name)
        connected = p in bone_of
        roll = bone_roll(kz[p], kz[kp])
        bones.append(Bone(names[kp], k[p].copy(), k[kp].copy(), parent_name, kp, True, roll, "edge", connected))
        bone_of[kp] = names[kp]
    if leaf_bones:
        tip_inside = tip_inside or inside
        shortest = min_bone_fraction * (float(np.ptp(k, axis=0).max()) or 1.0)
        shortened = {}
        for kp in order[1:]:
            if (parents == kp).any():
                continue
            d = leaf_fraction * (k[kp] - k[parents[kp]])
            full = float(np.linalg.norm(d))
            keep = max(_tip_fraction(k[kp], d, tip_inside, ground, up_axis), min(1.0, shortest / max(full, 1e-300)))
            tail = k[kp] + keep * d
            name = tip_name(names[kp], chain_named=auto)
            if keep < 1.0:
                shortened[name] = round(keep, 4)
            roll = bone_roll(kz[kp], to_z_up(tail, up_axis))
            bones.append(Bone(name, k[kp].copy(), tail, names[kp], kp, True, roll, "leaf", True))
        if tip_inside is not None or ground is not None:
            decisions["tips_shortened"] = shortened
    _make_unique(bones)
    for note in repairs:
        log.warning("skeleton: %s", note)
    return Skeleton(
        keypoints=k, adjacency=a, root=root_index, parents=parents, bones=bones, repairs=repairs, decisions=decisions
    )


TIP_SAMPLES = 16  # samples along a leaf bone for the inside test


def _tip_fraction(head, vector, inside, ground, up_axis) -> float:
    """Largest fraction t in [0, 1] of the leaf bone head -> head + vector whose samples up to t are
    all inside the mesh (when `inside` is given) and above `ground` (when given)."""
    t = np.arange(1, TIP_SAMPLES + 1) / TIP_SAMPLES
    points = head[None] + t[:, None] * vector[None]
    ok = np.ones(len(t), bool)
    if inside is not None:
        ok &= np.asarray(inside(points), bool)
    if ground is not None:
        ok &= to_z_up(points, up_axis)[:, 2] >= ground
    bad = np.flatnonzero(~ok)
    return 1.0 if len(bad) == 0 else float(t[bad[0]] - 1.0 / TIP_SAMPLES)


def _prior_changes(plain, chosen, adjacency, penalty) -> list[dict]:
    """Tree edges the priors added or removed, compared with the adjacency's own spanning tree."""
    plain_set = {tuple(sorted(e)) for e in plain}
    chosen_set = {tuple(sorted(e)) for e in chosen}

    def entry(edge, change):
        i, j = edge
        return {"edge": [i, j], "change": change, "adjacency": float(adjacency[i, j]), "penalty": float(penalty[i, j])}

    added = [entry(e, "added") for e in sorted(chosen_set - plain_set)]
    return added + [entry(e, "removed") for e in sorted(plain_set - chosen_set)]


def _parent_first(parents: np.ndarray, root: int) -> list[int]:
    """Depth-first order from the root, children by index: every parent precedes its children."""
    children = [sorted(int(i) for i in np.flatnonzero(parents == p)) for p in range(len(parents))]
    order, stack = [], [root]
    while stack:
        u = stack.pop()
        order.append(u)
        stack.extend(reversed(children[u]))
    return order


def _nudge_coincident(k, parents, order, up_axis, fraction, repairs) -> None:
    extent = float(np.ptp(k, axis=0).max())
    min_len = fraction * (extent if extent > 0 else 1.0)
    up = from_z_up(np.array([0.0, 0.0, 1.0]), up_axis)
    moved = []
    for kp in order[1:]:
        p = parents[kp]
        if np.linalg.norm(k[kp] - k[p]) >= min_len:
            continue
        direction = up
        if parents[p] >= 0 and np.linalg.norm(k[p] - k[parents[p]]) > 0:
            direction = (k[p] - k[parents[p]]) / np.linalg.norm(k[p] - k[parents[p]])
        k[kp] = k[p] + min_len * direction
        moved.append(int(kp))
    if moved:
        repairs.append(f"keypoints {moved} coincided with their parent keypoint; nudged {min_len:.3g} apart")


def _make_unique(bones: list[Bone]) -> None:
    """Suffix repeated names with _2, _3, ... (only leaf bones can collide, and they have no children)."""
    seen: set[str] = set()
    for b in bones:
        name, i = b.name, 2
        while name in seen:
            name, i = f"{b.name}_{i}", i + 1
        seen.add(name)
        b.name = name
