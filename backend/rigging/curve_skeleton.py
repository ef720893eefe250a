"""Curve skeleton of a mesh's voxelised interior: the geometric skeleton the rig refinements use.

`medial_tree`: voxelise the interior (generalised winding number >= 0.5 at voxel centres, libigl's
fast winding number, so open or self-overlapping game meshes work), keep the parts that matter,
thin it to one-voxel curves (scikit-image's `skeletonize`, Lee's method), make the curves a tree (a
minimum spanning tree of the 26-neighbour graph, so rings break at their thinnest link), prune
spurs (leaf branches shorter than `spur_factor` x the thickness where they join: bumps of a faceted
surface) and hang it from its thickest branch point.

`place_joints`: joints at branch points, ends and bends (Ramer-Douglas-Peucker on each branch),
and, each switchable (`CurveSkeletonOptions`): leaf ends continued to the surface, branch points
closer than their thickness merged, bones longer than `max_bone` split, joints at given anchor
points (learned keypoints snapped to the curves). rigging.symmetry.mirror_skeleton then makes the
two sides mirror images.

`curve_skeleton` does both (progress and cancellation points in the long steps: winding numbers,
thinning, pruning). With `CurveSkeletonOptions.baseline()` it is the plain geometric
skeleton (branches, ends, bends; nothing else): the bar the learned rigs are measured against.

Frame: the mesh's own (any up axis; nothing here depends on it). Lengths are in mesh units unless
a name says "fraction" (of the mesh's largest bounding-box side, "size").
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from keydiff3d_addon.rigcore import RigOptions

from ..errors import InputError
from ..progress import Progress

JOINT_KINDS = ("branch", "end", "bend", "split", "limb", "anchor", "mirror")


@dataclass
class VoxelGrid:
    """inside (X, Y, Z) bool; voxel (i, j, k) has its centre at origin + pitch * (i, j, k);
    depth (X, Y, Z) float: distance from each inside voxel centre to the nearest outside one (mesh units)."""

    inside: np.ndarray
    origin: np.ndarray
    pitch: float
    depth: np.ndarray

    def centres(self, index: np.ndarray) -> np.ndarray:
        """(M, 3) world centres of voxel indices (M, 3)."""
        return self.origin + self.pitch * np.asarray(index, np.float64)

    def index_of(self, points: np.ndarray) -> np.ndarray:
        """(M, 3) int: the voxel holding each point, clipped to the grid."""
        index = np.rint((np.asarray(points, np.float64).reshape(-1, 3) - self.origin) / self.pitch).astype(np.int64)
        return np.clip(index, 0, np.array(self.inside.shape) - 1)

    def contains(self, points: np.ndarray) -> np.ndarray:
        """(M,) bool: the point's voxel is inside."""
        i = self.index_of(points)
        return self.inside[i[:, 0], i[:, 1], i[:, 2]]

    def depth_at(self, points: np.ndarray) -> np.ndarray:
        i = self.index_of(points)
        return self.depth[i[:, 0], i[:, 1], i[:, 2]]


_PRESET = RigOptions()  # a preset's [rig] defaults: the one source of the settings a preset can change
COARSEST_MAX_BONE = 0.5  # coarser rebuilds split bones longer than half the creature still


@dataclass(frozen=True)
class CurveSkeletonOptions:
    """resolution: voxels along the mesh's largest side; min_component: interior parts smaller than
    this fraction of the largest are dropped; spur_factor: leaf branches shorter than this x the
    thickness where they join are pruned; bend_tolerance: a joint goes where the medial curve strays
    more than this fraction of size from the straight bone.
    Refinements (off in `baseline()`): min_branch: leaf branches shorter than this fraction of size
    are pruned too (the spurs of thin sheets: wings, fins, whose thickness is a voxel); extend_ends:
    leaf ends continue to `end_margin` voxels inside the surface; merge_factor: branch points closer
    than this x their thickness become one joint (0: off); max_bone: longer bones are split evenly
    (fraction of size; 0: off); limb_root: a joint where a branch leaves a branch point's body, at
    this x the thickness there (0: off); anchor_spacing: anchors closer than this fraction of size
    to a branch end or to each other are dropped, and bends that close to an anchor.
    The settings a preset's [rig] section can change take their defaults from rigcore's RigOptions."""

    resolution: int = _PRESET.resolution
    min_component: float = 0.02
    spur_factor: float = _PRESET.spur_factor
    bend_tolerance: float = _PRESET.bend_tolerance
    min_branch: float = _PRESET.min_branch
    extend_ends: bool = _PRESET.extend_ends
    end_margin: float = 1.0
    merge_factor: float = _PRESET.merge_factor
    max_bone: float = _PRESET.max_bone
    anchor_spacing: float = _PRESET.anchor_spacing
    limb_root: float = _PRESET.limb_root

    @classmethod
    def baseline(cls, **changes) -> CurveSkeletonOptions:
        """The plain geometric skeleton: joints at branch points, ends and bends only."""
        return replace(cls(min_branch=0.0, extend_ends=False, merge_factor=0.0, max_bone=0.0, limb_root=0.0), **changes)

    def coarser(self) -> CurveSkeletonOptions:
        """Fewer joints on the same voxels: twice the shortest kept branch, the bend tolerance and the
        longest bone (for a skeleton over the bundle's joint limit); the longest bone grows to at most
        COARSEST_MAX_BONE (a larger one set by the caller stays)."""
        return replace(
            self,
            min_branch=2 * max(self.min_branch, 0.02),
            bend_tolerance=2 * self.bend_tolerance,
            max_bone=max(self.max_bone, min(2 * self.max_bone, COARSEST_MAX_BONE)),
        )


# --------------------------------------------------------------------------- voxels


def voxelise(
    vertices: np.ndarray, faces: np.ndarray, resolution: int = 96, pad: int = 2, progress: Progress | None = None
) -> VoxelGrid:
    """The mesh's interior on a grid of `resolution` voxels along its largest side (plus `pad` empty
    voxels on every side): voxel centres with generalised winding number >= 0.5, computed in slabs
    (each a progress update and cancellation point)."""
    import igl
    from scipy import ndimage

    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    if len(v) < 4 or len(f) < 4:
        raise InputError("the mesh is too small to voxelise (fewer than 4 vertices or faces)")
    lo, extent = v.min(0), np.ptp(v, axis=0)
    pitch = float(extent.max()) / resolution
    if not pitch > 0:
        raise InputError("the mesh has no extent")
    shape = np.ceil(extent / pitch).astype(np.int64) + 1 + 2 * pad
    origin = lo - pad * pitch
    axes = [origin[a] + pitch * np.arange(shape[a]) for a in range(3)]
    centres = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    winding = np.empty(len(centres))
    slabs = np.array_split(np.arange(len(centres)), min(8, len(centres)))
    for n, slab in enumerate(slabs):
        if progress is not None:
            progress.update(n / len(slabs), "winding numbers")
        winding[slab] = igl.fast_winding_number(v, f, centres[slab])
    inside = (winding >= 0.5).reshape(shape)
    depth = ndimage.distance_transform_edt(inside) * pitch
    return VoxelGrid(inside, origin, pitch, depth)


def keep_components(grid: VoxelGrid, min_fraction: float) -> VoxelGrid:
    """Drop interior components smaller than `min_fraction` of the largest (loose eyes, debris)."""
    from scipy import ndimage

    label, count = ndimage.label(grid.inside, structure=np.ones((3, 3, 3)))
    if count == 0:
        raise InputError("the mesh encloses no volume (is it a closed surface?)")
    sizes = np.bincount(label.ravel())[1:]
    keep = np.flatnonzero(sizes >= min_fraction * sizes.max()) + 1
    inside = np.isin(label, keep)
    return VoxelGrid(inside, grid.origin, grid.pitch, np.where(inside, grid.depth, 0.0))


# --------------------------------------------------------------------------- voxel tree

_OFFSETS = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1) if (a, b, c) != (0, 0, 0)])


def skeleton_voxel_tree(grid: VoxelGrid) -> tuple[np.ndarray, list[list[int]]]:
    """Thin the interior to curves and make them a forest: (voxel indices (S, 3), neighbours per node).
    Cycles (rings, 26-neighbour triangles) break at the edge of the minimum spanning tree with
    weight length / thickness, i.e. the thinnest, longest link goes. Separate interior parts are
    joined by their closest pair of skeleton voxels (one straight link each)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components, minimum_spanning_tree
    from scipy.spatial import cKDTree
    from skimage.morphology import skeletonize

    thin = skeletonize(grid.inside)
    index = np.argwhere(thin)
    if len(index) == 0:
        raise InputError("the mesh's interior thinned to nothing (is it a closed surface?)")
    lookup = -np.ones(grid.inside.shape, np.int64)
    lookup[tuple(index.T)] = np.arange(len(index))
    shape = np.array(grid.inside.shape)
    rows, cols, weights = [], [], []
    depth = np.maximum(grid.depth[tuple(index.T)], 0.5 * grid.pitch)
    for offset in _OFFSETS[_OFFSETS.tolist().index([0, 0, 1]) :]:  # half the offsets: each pair once
        other = index + offset
        valid = np.all((other >= 0) & (other < shape), 1)
        j = np.full(len(index), -1)
        j[valid] = lookup[tuple(other[valid].T)]
        hit = np.flatnonzero(j >= 0)
        rows.append(hit)
        cols.append(j[hit])
        weights.append(np.linalg.norm(offset) * 2.0 / (depth[hit] + depth[j[hit]]))
    rows, cols, weights = (np.concatenate(x) for x in (rows, cols, weights))
    n = len(index)
    tree = minimum_spanning_tree(coo_matrix((weights, (rows, cols)), shape=(n, n)).tocsr()).tocoo()
    pairs = [(int(a), int(b)) for a, b in zip(tree.row, tree.col)]
    count, label = connected_components(
        coo_matrix((np.ones(len(pairs)), ([p[0] for p in pairs], [p[1] for p in pairs])), shape=(n, n)), directed=False
    )
    if count > 1:  # join each part to the largest by its closest voxel pair (Prim over parts)
        sizes = np.bincount(label)
        joined = {int(np.argmax(sizes))}
        while len(joined) < count:
            members = np.flatnonzero(np.isin(label, list(joined)))
            others = np.flatnonzero(~np.isin(label, list(joined)))
            dist, nearest = cKDTree(index[members]).query(index[others])
            best = int(np.argmin(dist))
            pairs.append((int(members[nearest[best]]), int(others[best])))
            joined.add(int(label[others[best]]))
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for a, b in pairs:
        neighbours[a].append(b)
        neighbours[b].append(a)
    return index, neighbours


def _branches(neighbours: list[list[int]], alive: np.ndarray) -> list[list[int]]:
    """Maximal paths between nodes of degree != 2 (each a node list, ends included) of the live forest."""
    degree = np.array([sum(alive[m] for m in nb) if alive[i] else 0 for i, nb in enumerate(neighbours)])
    critical = np.flatnonzero(alive & (degree != 2))
    seen_edges: set[tuple[int, int]] = set()
    out = []
    for start in critical:
        for nxt in neighbours[start]:
            if not alive[nxt] or (min(start, nxt), max(start, nxt)) in seen_edges:
                continue
            path = [int(start), int(nxt)]
            seen_edges.add((min(start, nxt), max(start, nxt)))
            while degree[path[-1]] == 2:
                step = next(m for m in neighbours[path[-1]] if alive[m] and m != path[-2])
                seen_edges.add((min(path[-1], step), max(path[-1], step)))
                path.append(int(step))
            out.append(path)
    if not out and alive.any():  # a lone voxel
        out.append([int(np.flatnonzero(alive)[0])])
    return out


def prune_spurs(
    index: np.ndarray,
    neighbours: list[list[int]],
    grid: VoxelGrid,
    spur_factor: float,
    protected: np.ndarray | None = None,
    min_length: float = 0.0,
) -> np.ndarray:
    """(S,) bool: skeleton voxels kept after repeatedly cutting leaf branches shorter than
    `spur_factor` x the thickness at the node where they join or than `min_length` (never the last
    branch, never a branch holding a `protected` (S,) voxel)."""
    alive = np.ones(len(index), bool)
    points = grid.centres(index)
    depth = grid.depth[tuple(index.T)]
    protected = np.zeros(len(index), bool) if protected is None else protected
    while True:
        branches = _branches(neighbours, alive)
        if len(branches) <= 1:
            return alive
        degree = {i: sum(alive[m] for m in neighbours[i]) for b in branches for i in (b[0], b[-1])}
        cut = []
        for b in branches:
            ends = [degree[b[0]] == 1, degree[b[-1]] == 1]
            if sum(ends) != 1:
                continue
            path = b if ends[1] else b[::-1]  # junction first
            length = float(np.linalg.norm(np.diff(points[path], axis=0), axis=1).sum())
            short = length < max(spur_factor * depth[path[0]], min_length) or len(path) <= 2
            if short and not protected[path[1:]].any():
                cut.append((length, path))
        if not cut:
            return alive
        # shortest spur per junction first, so two spurs at one end never both take the limb's end
        done: set[int] = set()
        for _, path in sorted(cut, key=lambda c: c[0]):
            if path[0] in done:
                continue
            done.add(path[0])
            alive[path[1:]] = False


# --------------------------------------------------------------------------- medial tree


def children_of(parents: np.ndarray) -> list[list[int]]:
    """Children of every node of a tree given by parents (-1 at the root), in index order."""
    out: list[list[int]] = [[] for _ in range(len(parents))]
    for i, p in enumerate(parents):
        if p >= 0:
            out[int(p)].append(i)
    return out


@dataclass
class MedialTree:
    """The pruned curve skeleton as a dense tree of points (about one per voxel): points (M, 3),
    depth (M,) distance to the surface, parent (M,) with -1 at the root (node 0) and parents before
    their children; grid: the voxelisation; size: the mesh's largest bounding-box side."""

    points: np.ndarray
    depth: np.ndarray
    parent: np.ndarray
    grid: VoxelGrid
    size: float

    def children(self) -> list[list[int]]:
        return children_of(self.parent)

    def branches(self) -> list[list[int]]:
        """Node paths [c, ..., c'] between consecutive critical nodes (the root, branch points,
        leaves), parent end first, in parent-first order."""
        children = self.children()
        out, stack = [], [0]
        while stack:
            start = stack.pop()
            for child in reversed(children[start]):
                path = [start, child]
                while len(children[path[-1]]) == 1:
                    path.append(children[path[-1]][0])
                out.append(path)
                stack.append(path[-1])
        return out


def medial_tree(
    vertices: np.ndarray,
    faces: np.ndarray,
    options: CurveSkeletonOptions | None = None,
    grid: VoxelGrid | None = None,
    protect: np.ndarray | None = None,
    progress: Progress | None = None,
) -> MedialTree:
    """The pruned, rooted curve skeleton (see the module docstring). `grid` reuses a voxelisation;
    `protect` (K, 3): points whose nearest skeleton voxel no spur pruning may remove."""
    from scipy.spatial import cKDTree

    progress = progress or Progress()
    options = options or CurveSkeletonOptions()
    size = float(np.ptp(np.asarray(vertices, np.float64), axis=0).max())
    if grid is None:
        grid = voxelise(vertices, faces, options.resolution, progress=progress.span(0.0, 0.6, "voxelise"))
    grid = keep_components(grid, options.min_component)
    progress.update(0.6, "thinning the interior")
    index, neighbours = skeleton_voxel_tree(grid)
    progress.update(0.8, "pruning spurs")
    points = grid.centres(index)
    protected = np.zeros(len(index), bool)
    if protect is not None and len(protect):
        protected[cKDTree(points).query(np.asarray(protect, np.float64))[1]] = True
    alive = prune_spurs(index, neighbours, grid, options.spur_factor, protected, options.min_branch * size)
    depth = grid.depth[tuple(index.T)]
    degree = np.array([sum(alive[m] for m in nb) for nb in neighbours])
    live = np.flatnonzero(alive)
    junctions = live[degree[live] >= 3]
    root = int(max(junctions if len(junctions) else live, key=lambda i: (depth[i], -i)))
    order, parent_of = [root], {root: -1}  # breadth first over the live tree
    for u in order:
        for v in neighbours[u]:
            if alive[v] and v not in parent_of:
                parent_of[v] = u
                order.append(v)
    new = {old: i for i, old in enumerate(order)}
    tree = MedialTree(
        points[order].copy(),
        depth[order].copy(),
        np.array([new.get(parent_of[o], -1) for o in order], np.int64),
        grid,
        size,
    )
    for path in tree.branches():  # smooth the voxel staircase between critical nodes
        tree.points[path] = smooth_polyline(tree.points[path])
    if options.extend_ends:
        tree = _extend_leaves(tree, options.end_margin)
    progress.update(1.0, "curve skeleton")
    return tree


def _extend_leaves(tree: MedialTree, margin: float) -> MedialTree:
    """A node added beyond every leaf: its end continued to `margin` voxels inside the surface."""
    children = tree.children()
    points, depth, parent = [tree.points], [tree.depth], [tree.parent]
    count = len(tree.points)
    for path in tree.branches():
        if children[path[-1]]:
            continue
        extended = extend_to_surface(tree.points[path], tree.grid, margin)
        if len(extended) > len(path):
            points.append(extended[-1:])
            depth.append(tree.grid.depth_at(extended[-1:]))
            parent.append(np.array([path[-1]]))
            count += 1
    return MedialTree(
        np.concatenate(points), np.concatenate(depth), np.concatenate(parent).astype(np.int64), tree.grid, tree.size
    )


def smooth_polyline(points: np.ndarray, passes: int = 2) -> np.ndarray:
    """Voxel staircase smoothed by [1 2 1] / 4 passes; the ends stay."""
    p = np.asarray(points, np.float64).copy()
    for _ in range(passes):
        if len(p) < 3:
            break
        p[1:-1] = 0.25 * p[:-2] + 0.5 * p[1:-1] + 0.25 * p[2:]
    return p


def extend_to_surface(path: np.ndarray, grid: VoxelGrid, margin: float) -> np.ndarray:
    """The leaf end of `path` (P, 3; leaf last) continued along its end direction while inside the
    interior, stopping `margin` voxels short of the surface (unchanged when there is no room)."""
    pitch = grid.pitch
    end = path[-1]
    reach = float(grid.depth_at(end[None])[0])
    back = path[max(0, len(path) - 1 - max(2, int(round(reach / pitch))))]
    direction = end - back
    norm = float(np.linalg.norm(direction))
    if norm <= 0 or reach <= margin * pitch:
        return path
    direction /= norm
    steps = np.arange(0.5, 2.0 * reach / pitch + 2.0, 0.5) * pitch
    inside = grid.contains(end + steps[:, None] * direction)
    if not inside[0]:
        return path
    last = len(inside) - 1 if inside.all() else int(np.argmin(inside)) - 1
    length = steps[last] - margin * pitch
    if length <= 0.5 * pitch:
        return path
    return np.concatenate([path, (end + length * direction)[None]])


# --------------------------------------------------------------------------- joints


@dataclass
class CurveSkeleton:
    """A tree of joints on the medial curves of a mesh's interior.

    joints (J, 3) mesh units; parents (J,) int, -1 at the root (joint 0; parents come first);
    radius (J,) distance to the surface at each joint; kinds (J,) one of JOINT_KINDS; paths[j]
    (P_j, 3): the medial curve from the parent joint to joint j (the root's: its own point);
    side (J,) +1 / -1 for joints of the two mirror-image halves (rigging.symmetry.mirror_skeleton),
    0 on the mirror plane or where there is none; mirror (J,) each joint's mirror image (itself at side 0).
    """

    joints: np.ndarray
    parents: np.ndarray
    radius: np.ndarray
    kinds: list[str]
    paths: list[np.ndarray]
    size: float
    grid: VoxelGrid
    side: np.ndarray | None = None
    mirror: np.ndarray | None = None

    def __post_init__(self) -> None:
        count = len(self.joints)
        self.side = np.zeros(count, np.int64) if self.side is None else np.asarray(self.side, np.int64)
        self.mirror = np.arange(count) if self.mirror is None else np.asarray(self.mirror, np.int64)

    @property
    def edges(self) -> np.ndarray:
        """(J-1, 2) (parent, child) joint pairs."""
        child = np.flatnonzero(self.parents >= 0)
        return np.stack([self.parents[child], child], 1)

    def children(self) -> list[list[int]]:
        return children_of(self.parents)


def simplify(points: np.ndarray, tolerance: float) -> list[int]:
    """Ramer-Douglas-Peucker: indices of the polyline (P, 3) points kept (ends always)."""
    keep = {0, len(points) - 1}
    stack = [(0, len(points) - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        d = _point_line_distance(points[a + 1 : b], points[a], points[b])
        worst = int(np.argmax(d))
        if d[worst] > tolerance:
            keep.add(a + 1 + worst)
            stack += [(a, a + 1 + worst), (a + 1 + worst, b)]
    return sorted(keep)


def _point_line_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = b - a
    length2 = float(d @ d)
    if length2 <= 0:
        return np.linalg.norm(points - a, axis=1)
    t = np.clip((points - a) @ d / length2, 0.0, 1.0)
    return np.linalg.norm(points - (a + t[:, None] * d), axis=1)


def _arc(points: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])


def _branch_joints(
    path: np.ndarray, anchors: list[int], options: CurveSkeletonOptions, size: float, start_depth: float = 0.0
) -> list[tuple[int, str]]:
    """(index into path, kind) of the interior joints of one branch (P, 3): where it leaves the
    body at its start (arc length limb_root x `start_depth`, the thickness at a branch point), anchors
    (path indices) away from the ends and from each other, bends (Ramer-Douglas-Peucker between
    those) away from the anchors, then splits of chords longer than max_bone."""
    arc = _arc(path)
    spacing = options.anchor_spacing * size
    joints: dict[int, str] = {}
    leave = options.limb_root * start_depth
    if leave > 0 and arc[-1] > leave + max(start_depth, spacing):
        joints[int(np.searchsorted(arc, leave))] = "limb"
    kept: list[int] = []
    for a in sorted(anchors):
        if spacing <= arc[a] <= arc[-1] - spacing and (not kept or arc[a] - arc[kept[-1]] >= spacing):
            if all(abs(arc[a] - arc[j]) >= spacing for j in joints):
                kept.append(a)
    joints.update({a: "anchor" for a in kept})
    kept = sorted(joints)
    cuts = [0, *kept, len(path) - 1]
    for a, b in zip(cuts[:-1], cuts[1:]):
        for i in simplify(path[a : b + 1], options.bend_tolerance * size)[1:-1]:
            if not kept or min(abs(arc[a + i] - arc[c]) for c in kept) >= spacing:
                joints[a + i] = "bend"
    if options.max_bone > 0:
        ordered = [0, *sorted(joints), len(path) - 1]
        for a, b in zip(ordered[:-1], ordered[1:]):
            pieces = int(np.ceil(np.linalg.norm(path[b] - path[a]) / (options.max_bone * size)))
            for k in range(1, pieces):
                i = int(np.clip(np.searchsorted(arc, arc[a] + (arc[b] - arc[a]) * k / pieces), a + 1, b - 1))
                if a < i < b:
                    joints.setdefault(i, "split")
    return sorted(joints.items())


def place_joints(
    tree: MedialTree, options: CurveSkeletonOptions | None = None, anchors: np.ndarray | None = None
) -> CurveSkeleton:
    """Joints on a medial tree (see the module docstring); anchors (K, 3): points (e.g. learned
    keypoints) that get a joint where they snap onto the curves (the nearest medial point)."""
    options = options or CurveSkeletonOptions()
    size = tree.size
    branches = tree.branches()
    children = tree.children()
    # branch points closer than their thickness become one joint at their depth-weighted mean
    rep = {0: 0, **{b[-1]: b[-1] for b in branches}}
    for b in branches:  # parent-first, so a chain of short links merges into its top
        short = _arc(tree.points[b])[-1] < options.merge_factor * max(tree.depth[b[0]], tree.depth[b[-1]])
        if children[b[-1]] and short:
            rep[b[-1]] = rep[b[0]]
    members: dict[int, list[int]] = {}
    for c, r in rep.items():
        members.setdefault(r, []).append(c)
    position = {r: np.average(tree.points[m], axis=0, weights=tree.depth[m] + 1e-12) for r, m in members.items()}
    paths = []
    for b in branches:
        if rep[b[0]] != rep[b[-1]]:
            p = tree.points[b].copy()
            p[0], p[-1] = position[rep[b[0]]], position[rep[b[-1]]]
            paths.append((rep[b[0]], rep[b[-1]], p))
    anchored: list[list[int]] = [[] for _ in paths]
    if anchors is not None and len(anchors) and paths:
        every = np.concatenate([p for _, _, p in paths])
        owner = np.concatenate([np.full(len(p), i) for i, (_, _, p) in enumerate(paths)])
        offset = np.concatenate([np.arange(len(p)) for _, _, p in paths])
        for point in np.asarray(anchors, np.float64).reshape(-1, 3):
            i = int(np.argmin(np.linalg.norm(every - point, axis=1)))
            anchored[owner[i]].append(int(offset[i]))
    starts = {start for start, _, _ in paths}
    joints, parents, kinds, curves = (
        [position[0]],
        [-1],
        ["branch" if len(children[0]) > 1 else "end"],
        [position[0][None]],
    )
    joint_of = {0: 0}
    for (start, end, p), own in zip(paths, anchored):  # paths are parent-first: start has its joint
        parent, previous = joint_of[start], 0
        start_depth = float(tree.grid.depth_at(p[:1])[0]) if sum(s == start for s, _, _ in paths) > 1 else 0.0
        for i, kind in [
            *_branch_joints(p, own, options, size, start_depth),
            (len(p) - 1, "branch" if end in starts else "end"),
        ]:
            joints.append(p[i])
            parents.append(parent)
            kinds.append(kind)
            curves.append(p[previous : i + 1])
            parent, previous = len(joints) - 1, i
        joint_of[end] = parent
    joints = np.array(joints)
    return CurveSkeleton(
        joints, np.array(parents, np.int64), tree.grid.depth_at(joints), kinds, curves, size, tree.grid
    )


def curve_skeleton(
    vertices: np.ndarray,
    faces: np.ndarray,
    options: CurveSkeletonOptions | None = None,
    *,
    grid: VoxelGrid | None = None,
    anchors: np.ndarray | None = None,
    protect_anchored_spurs: bool = False,
    progress: Progress | None = None,
) -> CurveSkeleton:
    """`medial_tree` then `place_joints`; `protect_anchored_spurs`: no spur holding an anchor's
    nearest skeleton voxel is pruned."""
    options = options or CurveSkeletonOptions()
    tree = medial_tree(vertices, faces, options, grid, anchors if protect_anchored_spurs else None, progress)
    return place_joints(tree, options, anchors)
