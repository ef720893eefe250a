"""Bone names from what the chains of a skeleton are: spine, neck, tail, leg, arm, wing, hip,
shoulder, with .L / .R on mirror pairs.

Numpy + stdlib only (runs inside Blender's Python). Frame: z up (callers bring a y-up frame to z up
first). Inputs are a tree over keypoints (N, 3): parents (N,) with -1 at the root.

Left and right come from a `Mirror`; .L is the creature's own left when its head is found (the
front is the head end), else Blender's +X side: either found on the keypoints themselves (`find_mirror`: a
vertical plane through their centroid under which the tree maps onto itself) or given by the
caller (the backend finds the plane on the mesh's rest surface and mirrors the skeleton itself,
keydiff3d.rigging.symmetry, which is far steadier than keypoints alone).

Chain labels (`chain_names`): the tree splits into chains at branch nodes. A chain on the mirror
plane is "spine" when it ends in a branch, else "neck" (the one reaching highest, if it rises; or
the thickest end when `thickness` is given and none rises) or "tail". A paired chain ending in a
leaf is "leg" when it goes down to the ground, "wing" when it rises, else the preset's
`limb_other` ("arm", "limb"); one ending in a branch is "hip" when everything below it is legs,
else "shoulder". Chains sharing a label are numbered along the body, head end first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np

from .config import positive


@dataclass
class Mirror:
    """Reflection plane (unit normal, point) and mirror[i] = index of keypoint i's mirror image
    (i itself when i lies on the plane). side[i] = +1 (.L), -1 (.R) or 0 (on the plane)."""

    normal: np.ndarray
    point: np.ndarray
    mirror: np.ndarray
    side: np.ndarray
    error: float  # mean mismatch / skeleton extent

    def oriented(self) -> Mirror:
        """The same plane with the normal turned so that .L is +X (Blender's left for a character
        facing -Y); sides follow."""
        n = np.asarray(self.normal, np.float64)
        if n[0] < -1e-9 or (abs(n[0]) <= 1e-9 and n[1] < 0):
            return Mirror(-n, self.point, self.mirror, -np.asarray(self.side), self.error)
        return self


def find_mirror(keypoints_zup, parents, tolerance: float = 0.05) -> Mirror | None:
    """Find a vertical mirror plane through the keypoint centroid under which the skeleton maps onto
    itself (tree edges to tree edges). None when the mean mismatch exceeds `tolerance` x extent or
    any keypoint misses its mirror image by more than twice that."""
    k = np.asarray(keypoints_zup, np.float64)
    extent = float(np.ptp(k, axis=0).max()) or 1.0
    centre = k.mean(0)

    def evaluate(angle: float):
        normal = np.array([math.cos(angle), math.sin(angle), 0.0])
        signed = (k - centre) @ normal
        reflected = k - 2.0 * signed[:, None] * normal
        dist = np.linalg.norm(reflected[:, None, :] - k[None, :, :], axis=-1)
        match = dist.argmin(1)
        return float(dist[np.arange(len(k)), match].mean()) / extent, normal, match, signed

    coarse = min(
        (evaluate(math.radians(a)) + (math.radians(a),) for a in np.arange(0.0, 180.0, 2.0)), key=lambda r: r[0]
    )
    fine = min((evaluate(coarse[4] + math.radians(a)) for a in np.arange(-2.0, 2.01, 0.1)), key=lambda r: r[0])
    error, normal, match, signed = fine
    reflected = k - 2.0 * signed[:, None] * normal
    worst = float(np.linalg.norm(reflected - k[match], axis=1).max()) / extent
    if error > tolerance or worst > 2.0 * tolerance:  # one keypoint far off breaks the symmetry too
        return None
    n = len(k)
    if not np.array_equal(match[match], np.arange(n)):
        return None
    for i in range(n):  # tree edges must map to tree edges
        p = parents[i]
        if p >= 0 and parents[match[i]] != match[p] and parents[match[p]] != match[i]:
            return None
    eps = tolerance * extent
    side = np.where(match == np.arange(n), 0, np.sign(signed)).astype(np.int64)
    if ((match != np.arange(n)) & (np.abs(signed) < 0.5 * eps)).any():
        return None
    if (side[match] != -side).any():
        return None
    return Mirror(normal=normal, point=centre, mirror=match, side=side, error=error).oriented()


def check_mirror(mirror: Mirror, parents) -> None:
    """ValueError unless `mirror` maps the tree onto itself: an involution whose pairs sit on
    opposite sides, centre nodes on side 0, and tree edges to tree edges."""
    m, side = np.asarray(mirror.mirror, np.int64), np.asarray(mirror.side, np.int64)
    n = len(parents)
    if m.shape != (n,) or side.shape != (n,) or not np.array_equal(m[m], np.arange(n)):
        raise ValueError("the mirror map must pair every keypoint with one image (an involution)")
    if ((m == np.arange(n)) != (side == 0)).any() or (side[m] != -side).any():
        raise ValueError("mirror pairs must lie on opposite sides and centre keypoints on side 0")
    for i in range(n):
        p = parents[i]
        if p >= 0 and parents[m[i]] != m[p] and parents[m[p]] != m[i]:
            raise ValueError("the mirror map must take tree edges to tree edges")


@dataclass(frozen=True)
class Naming:
    """How bones are named. "auto": chains labelled (module docstring) with .L/.R when mirror
    symmetric, else "index" names bone_01, bone_02, ... in bone order."""

    style: Literal["auto", "index"] = "auto"
    limb_down: str = "leg"  # paired chain that goes down to the ground
    limb_other: str = "arm"  # paired chain that does not and does not rise (arms; "limb" for generic)
    mirror_tolerance: Annotated[float, positive] = 0.05


def chains(children: list[list[int]], root: int) -> list[list[int]]:
    """Split the rooted tree into chains of child keypoints: a chain starts below a branching node
    (or the root) and continues while nodes have exactly one child. Parent-first, index order."""
    out: list[list[int]] = []
    stack = [[c] for c in reversed(children[root])]
    while stack:
        chain = stack.pop()
        while len(children[chain[-1]]) == 1:
            chain.append(children[chain[-1]][0])
        out.append(chain)
        stack.extend([c] for c in reversed(children[chain[-1]]))
    return out


def chain_names(
    k: np.ndarray,
    parents: np.ndarray,
    root: int,
    naming: Naming,
    mirror: Mirror | None = None,
    thickness: np.ndarray | None = None,
) -> dict[int, str] | None:
    """Bone name ("<label><n>_<jj>[.L|.R]") per child keypoint of the tree over z-up keypoints
    k (N, 3), or None when there is no mirror symmetry (`mirror` None: `find_mirror` on k).
    `thickness` (N,): the body's local thickness at each keypoint (optional)."""
    if mirror is None:
        mirror = find_mirror(k, parents, naming.mirror_tolerance)
        if mirror is None:
            return None
    else:
        check_mirror(mirror, parents)
        mirror = mirror.oriented()
    n = len(k)
    children = [sorted(int(i) for i in np.flatnonzero(parents == p)) for p in range(n)]
    parts = chains(children, root)
    body_axis = np.cross([0.0, 0.0, 1.0], mirror.normal)  # horizontal, in the mirror plane
    side = np.asarray(mirror.side)
    size = 2.0 * float(np.linalg.norm(k - k.mean(0), axis=1).max()) or 1.0  # rotation invariant
    off = (side != 0) | (
        np.abs((k - mirror.point) @ mirror.normal) > 0.12 * size
    )  # a lateral part without a twin is off too
    labels = _chain_labels(k, parents, root, children, parts, off, naming, thickness)
    front = [parts[ci][-1] for ci, label in labels.items() if label == "head"] or [
        parts[ci][-1] for ci, label in labels.items() if label == "neck"
    ]
    if front:  # the head end is the front: .L is the creature's own left, however it is turned
        if float((k[front[-1]] - k.mean(0)) @ body_axis) < 0:
            body_axis = -body_axis
        if float(np.cross([0.0, 0.0, 1.0], body_axis) @ mirror.normal) < 0:
            side = -side

    # number chains sharing a label (left side + centre decide; right chains copy their mirror)
    chain_of = {tuple(c): ci for ci, c in enumerate(parts)}
    bases: dict[int, str] = {}
    groups: dict[str, list[int]] = {}
    for ci, c in enumerate(parts):
        if side[c[-1]] >= 0:
            groups.setdefault(labels[ci], []).append(ci)
    for label, group in groups.items():
        group.sort(key=lambda ci: (-float(k[parts[ci]].mean(0) @ body_axis), -float(k[parts[ci]].mean(0)[2]), ci))
        for number, ci in enumerate(group, 1):
            bases[ci] = label if len(group) == 1 else f"{label}{number}"
    for ci, c in enumerate(parts):
        if side[c[-1]] < 0:
            twin = chain_of.get(tuple(int(mirror.mirror[i]) for i in c))
            if twin is None or twin not in bases:
                return None
            bases[ci] = bases[twin]
    names: dict[int, str] = {}
    for ci, c in enumerate(parts):
        suffix = {1: ".L", -1: ".R", 0: ""}[int(side[c[-1]])]
        for j, kp in enumerate(c, 1):
            names[kp] = f"{bases[ci]}_{j:02d}{suffix}"
    return names


def _chain_labels(k, parents, root, children, parts, off, naming: Naming, thickness) -> dict[int, str]:
    """Label of every chain (see the module docstring), found along the path from the root to the
    head: the centre leaf rising most above the root, or the thickest centre leaf when none rises.
    The neck starts at the last branch point of that path with a limb (a paired subtree reaching
    the ground or longer than LIMB x size); after it, paired leaves are ears and centre leaves head parts.
    off (N,) bool: the keypoint is off the mirror plane (paired, or a side part without a twin)."""
    size = 2.0 * float(np.linalg.norm(k - k.mean(0), axis=1).max()) or 1.0  # rotation invariant
    ground, height = float(k[:, 2].min()), float(np.ptp(k[:, 2])) or 1.0
    chain_of = {node: ci for ci, c in enumerate(parts) for node in c}  # chain holding each child keypoint
    labels: dict[int, str] = {}
    for ci, c in enumerate(parts):  # paired chains ending in a leaf, by shape
        if not off[c[-1]] or children[c[-1]]:
            continue
        start, end = k[parents[c[0]]], k[c[-1]]
        drop = start[2] - end[2]
        if drop > 0 and end[2] < ground + 0.15 * height:
            labels[ci] = naming.limb_down
        elif -drop > 0.15 * size:
            labels[ci] = "wing"
        else:
            labels[ci] = naming.limb_other
    centre_leaves = [ci for ci, c in enumerate(parts) if not off[c[-1]] and not children[c[-1]]]
    rise = {ci: float(k[parts[ci][-1], 2] - k[root, 2]) for ci in centre_leaves}
    head = max((ci for ci in centre_leaves if rise[ci] > 0.1 * size), key=lambda ci: (rise[ci], -ci), default=None)
    if head is None and thickness is not None and len(centre_leaves) > 1:
        head = max(
            centre_leaves, key=lambda ci: (float(np.mean(thickness[parts[ci]])), -ci)
        )  # the head end is the thick one
    path = [parts[head][-1]] if head is not None else []
    while path and parents[path[-1]] >= 0:
        path.append(int(parents[path[-1]]))
    path.reverse()  # root ... head end
    neck_base = root
    for node in path[:-1]:
        if any(off[c] and _is_limb(c, k, children, ground, height, size) for c in children[node]):
            neck_base = node
    after = set(path[path.index(neck_base) + 1 :]) if path else set()
    head_part = set(after)
    for node in sorted(after):  # everything hanging below the neck and head
        stack = list(children[node])
        while stack:
            u = stack.pop()
            head_part.add(u)
            stack.extend(children[u])
    path_chains = [ci for ci in dict.fromkeys(chain_of[n] for n in path[1:])]
    neck_chains = [ci for ci in path_chains if parts[ci][-1] in after]
    for ci in path_chains:
        labels[ci] = "spine"
    for ci in neck_chains:
        labels[ci] = "neck"
    if len(neck_chains) > 1:
        labels[neck_chains[-1]] = "head"
    for ci, c in enumerate(parts):
        if ci in labels and ci not in path_chains and off[c[-1]] and c[0] in head_part:
            labels[ci] = "ear"
        if ci in labels:
            continue
        if not off[c[-1]]:
            labels[ci] = ("head" if c[0] in head_part else "tail") if not children[c[-1]] else "spine"
        else:  # a paired chain ending in a branch: what hangs below decides
            below = _leaf_chains_below(c[-1], children, {parts[j][-1]: j for j in range(len(parts))})
            if below and all(
                k[parts[j], 2].max() < ground + 0.15 * height for j in below
            ):  # a foot: the leaves are toes
                labels[ci] = naming.limb_down
                labels.update({j: "toe" for j in below})
            elif below and all(labels.get(j) == naming.limb_down for j in below):
                labels[ci] = "hip"
            else:
                labels[ci] = "shoulder"
    return labels


LIMB = 0.2  # a paired subtree at least this long (fraction of the skeleton's size) is a limb, not an ear or horn


def _is_limb(start: int, k, children, ground: float, height: float, size: float) -> bool:
    """Whether the subtree from keypoint `start` down reaches the ground or is longer than LIMB x size."""
    longest, lowest, stack = 0.0, k[start, 2], [(start, 0.0)]
    while stack:
        u, length = stack.pop()
        longest, lowest = max(longest, length), min(lowest, k[u, 2])
        stack.extend((c, length + float(np.linalg.norm(k[c] - k[u]))) for c in children[u])
    return lowest < ground + 0.15 * height or longest >= LIMB * size


def _leaf_chains_below(node: int, children: list[list[int]], chain_of_node: dict[int, int]) -> list[int]:
    """Chains (indices) ending in a leaf anywhere below `node`."""
    out, stack = [], list(children[node])
    while stack:
        u = stack.pop()
        if children[u]:
            stack.extend(children[u])
        elif u in chain_of_node:
            out.append(chain_of_node[u])
    return out


def tip_name(last_bone: str, chain_named: bool) -> str:
    """Leaf bone name: "leg1_03.L" -> "leg1_tip.L" for chain names, "bone_07" -> "bone_07_tip"."""
    if not chain_named:
        return f"{last_bone}_tip"
    stem, side = (last_bone[:-2], last_bone[-2:]) if last_bone.endswith((".L", ".R")) else (last_bone, "")
    return f"{stem.rsplit('_', 1)[0]}_tip{side}"
