"""How good a rig is on an artist-rigged creature (evaluation.rigged_assets): its skeleton against
the artist's, its bones against the body, its names, and how its weights deform.

Measures (all in the asset's world frame, z up; "size" = the rest mesh's largest bounding-box side):
- structure: CD-J2J, CD-J2B, CD-B2B (evaluation.metrics; milli-size) of the rig's deform bones
  against the artist's skeleton (`artist_skeleton`: the weighted joints and their links), each
  beside the structure-free baselines with as many joints as the artist's skeleton: N farthest-point
  samples of the surface (J2J) and their Euclidean minimum spanning tree (J2B, B2B). The baseline
  is the same for every rig of a creature, so a ratio is a normalised distance and a rig cannot
  move its own baseline by adding or dropping joints;
- bones: the fraction of bone length inside the mesh (winding number >= 0.5 on the full mesh),
  bones longer than half the creature, the longest bone / size;
- names: the fraction of bones named .L / .R, and of those the fraction whose mirror image (in the
  plane found on the rest surface, rigging.symmetry) lands on the bone of the other side's name;
- deformation: animation fit / diagonal (evaluation.deformation.animation_fit on the artist's clips)
  and posability (mean fraction of edges torn when each bone bends 35 degrees).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .deformation import animation_fit, posability
from .metrics import cd_b2b, cd_j2b, cd_j2j

UNIT = 1000.0  # size -> milli-size
B2B_STEP = 0.005  # CD-B2B sample spacing, fraction of size
INSIDE_STEP = 0.005  # bone sampling for the inside fraction, fraction of size
LONG_BONE = 0.5  # a bone longer than this fraction of size is "long"
REAL_TAIL = 0.02  # an artist leaf bone whose tail is at least this far (fraction of size) has real extent
SIDE_NAME = re.compile(r"[._](?P<side>[LR])(\.\d+)?$|(?P<word>Left|Right)")


@dataclass
class Bones:
    """A rig's deform bones: heads / tails (B, 3), parents (B,) (-1 at roots, parents first), names (B,)."""

    heads: np.ndarray
    tails: np.ndarray
    parents: np.ndarray
    names: list[str]

    def graph(self, weld: float) -> tuple[np.ndarray, np.ndarray]:
        """(joints (J, 3), edges (E, 2)): the bones' end points merged within `weld` and the bones between them."""
        ends = np.concatenate([self.heads, self.tails])
        joints: list[np.ndarray] = []
        index = np.empty(len(ends), np.int64)
        for i, p in enumerate(ends):
            near = [j for j, q in enumerate(joints) if np.linalg.norm(p - q) <= weld]
            if near:
                index[i] = near[0]
            else:
                index[i] = len(joints)
                joints.append(p)
        b = len(self.heads)
        edges = np.stack([index[:b], index[b:]], 1)
        return np.array(joints), edges[edges[:, 0] != edges[:, 1]]


def rig_bones(skeleton) -> Bones:
    """The deform bones of a rigcore Skeleton, parents remapped to deform bones (a non-deforming
    root bone drops out)."""
    deform = [b for b in skeleton.bones if b.deform]
    position = {b.name: i for i, b in enumerate(deform)}
    by_name = {b.name: b for b in skeleton.bones}

    def deform_parent(bone):
        parent = bone.parent
        while parent is not None and parent not in position:
            parent = by_name[parent].parent
        return position.get(parent, -1) if parent is not None else -1

    return Bones(
        np.array([b.head for b in deform], np.float64),
        np.array([b.tail for b in deform], np.float64),
        np.array([deform_parent(b) for b in deform], np.int64),
        [b.name for b in deform],
    )


@dataclass
class ArtistSkeleton:
    """The artist's skeleton as segments. bones: one per weighted bone (columns `columns` (B,) of
    asset.weights): head -> its real tail (converted files) or the mean head of its weighted
    children, or for a leaf without a real tail the head pushed on by half its parent link;
    parents = nearest weighted ancestor. joints / edges: the weighted heads and their links (plus
    leaf tails with real extent): what the structure metrics compare against."""

    bones: Bones
    columns: np.ndarray
    joints: np.ndarray
    edges: np.ndarray


def artist_skeleton(asset) -> ArtistSkeleton:
    size = float(np.ptp(asset.vertices, axis=0).max())
    weighted = np.flatnonzero(asset.deforming)
    position = {int(b): i for i, b in enumerate(weighted)}

    def ancestor(b: int) -> int:
        p = int(asset.parents[b])
        while p >= 0 and p not in position:
            p = int(asset.parents[p])
        return position.get(p, -1)

    parents = np.array([ancestor(int(b)) for b in weighted], np.int64)
    heads = asset.heads[weighted]
    real_tail = np.linalg.norm(asset.tails[weighted] - heads, axis=1) >= REAL_TAIL * size
    tails = np.empty_like(heads)
    joints, edges = [h for h in heads], []
    for i in range(len(weighted)):
        children = np.flatnonzero(parents == i)
        if real_tail[i]:
            tails[i] = asset.tails[weighted[i]]
        elif len(children):
            tails[i] = heads[children].mean(0)
        elif parents[i] >= 0:
            tails[i] = heads[i] + 0.5 * (heads[i] - heads[parents[i]])
        else:
            tails[i] = asset.tails[weighted[i]]
        if parents[i] >= 0:
            edges.append((int(parents[i]), i))
        if real_tail[i] and not len(children):
            joints.append(tails[i])
            edges.append((i, len(joints) - 1))
    names = [asset.bone_names[b] for b in weighted]
    return ArtistSkeleton(
        Bones(heads, tails, parents, names), weighted, np.array(joints), np.array(edges, np.int64).reshape(-1, 2)
    )


# --------------------------------------------------------------------------- structure


def farthest_points(points: np.ndarray, count: int) -> np.ndarray:
    """(count,) indices of farthest-point sampling, starting at the point farthest from the centroid."""
    chosen = [int(np.argmax(np.linalg.norm(points - points.mean(0), axis=1)))]
    dist = np.linalg.norm(points - points[chosen[0]], axis=1)
    for _ in range(count - 1):
        chosen.append(int(np.argmax(dist)))
        dist = np.minimum(dist, np.linalg.norm(points - points[chosen[-1]], axis=1))
    return np.array(chosen)


def euclidean_tree(points: np.ndarray) -> np.ndarray:
    """(N-1, 2) Euclidean minimum spanning tree (rigcore's Prim with a uniform adjacency)."""
    from keydiff3d_addon.rigcore import maximum_spanning_tree

    return np.asarray(maximum_spanning_tree(np.ones((len(points), len(points))), points), np.int64).reshape(-1, 2)


def structure_scores(
    joints: np.ndarray, edges: np.ndarray, reference: ArtistSkeleton, surface: np.ndarray, size: float
) -> dict[str, float]:
    """CD-J2J / J2B / B2B (milli-size) of a skeleton (joints (J, 3), edges (E, 2)) against the
    artist's, and the same for the structure-free baseline with the artist's joint count (`surface`
    (S, 3) samples): keys cd_*, cd_*_baseline and cd_*_ratio."""
    fps = surface[farthest_points(surface, max(len(reference.joints), 2))]
    mst = euclidean_tree(fps)
    ref_j, ref_e = reference.joints, reference.edges
    step = B2B_STEP * size
    out = {
        "cd_j2j": cd_j2j(joints, ref_j),
        "cd_j2b": cd_j2b(joints, edges, ref_j, ref_e),
        "cd_b2b": cd_b2b(joints, edges, ref_j, ref_e, step=step),
        "cd_j2j_baseline": cd_j2j(fps, ref_j),
        "cd_j2b_baseline": cd_j2b(fps, mst, ref_j, ref_e),
        "cd_b2b_baseline": cd_b2b(fps, mst, ref_j, ref_e, step=step),
    }
    out = {k: UNIT * v / size for k, v in out.items()}
    for k in ("cd_j2j", "cd_j2b", "cd_b2b"):
        out[f"{k}_ratio"] = out[k] / max(out[f"{k}_baseline"], 1e-12)
    return out


# --------------------------------------------------------------------------- bones and names


def mesh_inside(vertices: np.ndarray, faces: np.ndarray):
    """points (M, 3) -> (M,) bool: generalised winding number >= 0.5 on the full mesh (libigl)."""
    import igl

    v, f = np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
    return lambda points: igl.fast_winding_number(v, f, np.asarray(points, np.float64).reshape(-1, 3)) >= 0.5


def bone_scores(bones: Bones, inside, size: float) -> dict[str, float]:
    """inside_fraction (length-weighted), long_bones (count longer than LONG_BONE x size),
    max_bone / size, bones (count)."""
    lengths = np.linalg.norm(bones.tails - bones.heads, axis=1)
    samples, weights = [], []
    for h, t, length in zip(bones.heads, bones.tails, lengths):
        count = max(int(np.ceil(length / (INSIDE_STEP * size))), 1)
        u = (np.arange(count) + 0.5) / count
        samples.append(h + u[:, None] * (t - h))
        weights.append(np.full(count, length / count))
    flags = inside(np.concatenate(samples))
    w = np.concatenate(weights)
    return {
        "inside_fraction": float((w * flags).sum() / max(w.sum(), 1e-12)),
        "long_bones": int((lengths > LONG_BONE * size).sum()),
        "max_bone": float(lengths.max() / size),
        "bones": len(lengths),
    }


def side_of(name: str) -> str:
    """ "L", "R" or "" from a bone name's side (a .L / _R suffix, also before a .001 copy number, or Left / Right)."""
    m = SIDE_NAME.search(name)
    return "" if m is None else (m.group("side") or m.group("word")[0])


def mirror_name(name: str) -> str:
    """The other side's name: "leg_01.L" -> "leg_01.R", "LeftArm" -> "RightArm"."""
    swap = {"L": "R", "R": "L", "Left": "Right", "Right": "Left"}

    def other(m: re.Match) -> str:
        if m.group("side"):
            return m.group(0).replace(m.group("side"), swap[m.group("side")], 1)
        return swap[m.group("word")]

    return SIDE_NAME.sub(other, name, count=1)


def name_scores(bones: Bones, plane, size: float, tolerance: float = 0.05) -> dict[str, float]:
    """sided_fraction: bones named .L/.R; mirrored_fraction: of those, the ones whose reflection in
    `plane` (rigging.symmetry.MirrorPlane) lies within tolerance x size of the other side's namesake."""
    sided = [i for i, n in enumerate(bones.names) if side_of(n)]
    index = {n: i for i, n in enumerate(bones.names)}
    good = 0
    for i in sided:
        j = index.get(mirror_name(bones.names[i]))
        if j is None or plane is None:
            continue
        error = max(
            np.linalg.norm(plane.reflect(bones.heads[i]) - bones.heads[j]),
            np.linalg.norm(plane.reflect(bones.tails[i]) - bones.tails[j]),
        )
        good += error <= tolerance * size
    return {
        "sided_fraction": len(sided) / max(len(bones.names), 1),
        "mirrored_fraction": good / len(sided) if sided else 0.0,
    }


def bilateral_pairs(reference: ArtistSkeleton, plane, size: float, tolerance: float = 0.05) -> int:
    """How many of the artist's bones lie off the mirror plane and have a mirror twin among the
    artist's bones (a creature with any is bilateral: it should have .L / .R names)."""
    b = reference.bones
    mids = 0.5 * (b.heads + b.tails)
    off = np.abs(plane.signed_distance(mids)) > tolerance * size
    reflected = plane.reflect(mids)
    count = 0
    for i in np.flatnonzero(off):
        d = np.linalg.norm(mids - reflected[i], axis=1)
        d[i] = np.inf
        count += bool((d[off] <= tolerance * size).any())
    return count


# --------------------------------------------------------------------------- deformation


def deformation_scores(asset, weights: np.ndarray, bones: Bones) -> dict[str, float]:
    """animation_fit (/ diagonal, over the asset's clip frames) and posability (mean torn-edge
    fraction) of dense `weights` (V, B) over `bones`."""
    diagonal = asset.diagonal
    targets = asset.posed()
    fit = animation_fit(asset.vertices, weights, targets) / diagonal if len(targets) else float("nan")
    pose = posability(asset.vertices, asset.faces, weights, bones.heads, bones.tails, bones.parents)
    return {"animation_fit": fit, "posability": pose.mean_torn, "worst_stretch": float(np.nanmax(pose.worst))}
