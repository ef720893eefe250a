"""Bone heat skin weights (Baran and Popovic 2007) computed as Blender's automatic weights are, with
Blender's failure cases handled. Numpy + stdlib only (runs inside Blender's Python).

Frames and shapes: vertices (V, 3), faces (F, 3) triangles, heat sources = bone segments
heads/tails (S, 3), all in one frame; `bone` (S,) maps each source to its deform bone's column.

Per source s, solve (L + H) w_s = H p_s, as Blender's meshlaplacian.cc does:
- L: cotangent Laplacian, each triangle's cotangent weight divided by the number of triangles sharing
  that edge, row v scaled by 0.5 / A_v, A_v the vertex's mixed Voronoi area (Meyer et al. 2002,
  obtuse triangles split 1/2, 1/4, 1/4; Blender's scale).
- d_v = min over sources of |v - c_vs| / (0.5 (cos_vs + 1.001)), c_vs the closest point of source s to
  v and cos_vs the cosine between v - c_vs and the vertex normal (unit face normals summed): the
  distance grows where the surface faces the bone.
- the sources within d_v (1 + 1e-4) whose closest point is visible from v (`rays.py`: the segment
  from v, started 1e-5 along and shortened by 2e-5, not entering any triangle from its front) share
  p_v = 1 / n_v, and H_v = n_v / max(d_v, 1e-4)^2; H_v = 0 where none is visible.
Multiplying row v by 2 A_v makes the system symmetric positive definite:
(L_cot + diag(2 A H)) w = 2 A H p, solved for all sources with one factorisation.

Where Blender fails we do not:
- a connected piece of the mesh (faces sharing vertices) in which no vertex sees a source (eye shells,
  armour plates, a part with no bone inside) makes Blender's system singular ("failed to find a
  solution") and its vertices unweighted; here it is solved after the rest, glued to it: each of its
  vertices is screened (H = 1 / d^2) towards the weights of the nearest vertex of the pieces that
  see a bone, at distance d, so an eye follows the head it sits in and a cape the body under it.
  When no piece sees any source, every vertex takes its nearest sources without the visibility test;
- vertices in no triangle (or only in zero-area ones) take their p directly (nearest sources).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .rays import (
    GridHitFinder,
    HitFinder,
    MeshAdjacency,
    blocked_by_front_faces,
    nearest_points,
    segment_hit_distance,
)
from .sparse import SymmetricSystem, connected_labels, solve_numpy

DISTANCE_EPSILON = 1e-4  # sources this close (relatively) to the nearest all count (Blender)
MIN_DISTANCE = 1e-4  # H is capped at numclosest / MIN_DISTANCE^2 (Blender)
STUB_FRACTION = 0.25  # a bone shorter than this fraction of the way to its child is a placeholder
LEAF_FRACTION = 0.5  # a placeholder leaf bone is extended to this fraction of its parent's length
RIDGE = 1e-10  # relative diagonal shift: keeps pieces joined only by zero-weight edges solvable


@dataclass
class HeatSources:
    """Heat source segments: bone (S,) deform-bone column, heads/tails (S, 3)."""

    bone: np.ndarray
    heads: np.ndarray
    tails: np.ndarray
    notes: list[str]


def heat_sources(bones, vertices, faces, hit_finder: HitFinder | None = None, placeholders: bool = True) -> HeatSources:
    """One source per deform bone (its head -> tail), except for placeholder bones.

    Armatures imported from glTF or FBX (formats without bone tails) often carry placeholder tails: a
    bone a thousandth of the creature long where the artist's bone ran to its child. A deform bone
    shorter than STUB_FRACTION x the distance from its head to its nearest child's head is skinned as
    segments from its head to every child's head; a childless one (kind "edge": not a tip bone
    `build_skeleton` made) shorter than STUB_FRACTION x its parent bone (parent head -> its head) is
    extended along its own direction to LEAF_FRACTION of that length, clipped where it would leave
    the mesh. Edge bones built by `build_skeleton` always reach their child and its tip bones are
    exempt, so rigs from keypoints are unchanged. `placeholders` False: every bone as given.
    `bones`: rigcore `Bone`s, parents first."""
    bones = list(bones)
    deform = [b for b in bones if b.deform]
    column = {b.name: i for i, b in enumerate(deform)}
    head_of = {b.name: np.asarray(b.head, np.float64) for b in bones}
    children: dict[str, list[str]] = {}
    for b in bones:
        if b.parent is not None:
            children.setdefault(b.parent, []).append(b.name)
    src_bone, heads, tails, notes = [], [], [], []
    stubs, leaves = [], []
    for b in deform:
        head, tail = np.asarray(b.head, np.float64), np.asarray(b.tail, np.float64)
        length = float(np.linalg.norm(tail - head))
        reach = [float(np.linalg.norm(head_of[c] - head)) for c in children.get(b.name, [])]
        reach = [r for r in reach if r > 0]
        if placeholders and reach and length < STUB_FRACTION * min(reach):
            for c in children[b.name]:
                if np.linalg.norm(head_of[c] - head) > 0:
                    src_bone.append(column[b.name])
                    heads.append(head)
                    tails.append(head_of[c])
            stubs.append(b.name)
            continue
        parent_length = float(np.linalg.norm(head - head_of[b.parent])) if b.parent in head_of else 0.0
        imported_leaf = b.kind == "edge" and not children.get(b.name)  # tip bones built from keypoints are real
        if placeholders and imported_leaf and 0 < length < STUB_FRACTION * parent_length:
            leaves.append((len(heads), b.name, parent_length))
        src_bone.append(column[b.name])
        heads.append(head)
        tails.append(tail)
    heads_a = np.array(heads, np.float64).reshape(-1, 3)
    tails_a = np.array(tails, np.float64).reshape(-1, 3)
    if leaves:
        rows = np.array([i for i, _, _ in leaves])
        direction = tails_a[rows] - heads_a[rows]
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        wanted = LEAF_FRACTION * np.array([p for _, _, p in leaves])
        reach = _inside_length(heads_a[rows], direction, wanted, vertices, faces, hit_finder)
        tails_a[rows] = (
            heads_a[rows]
            + np.maximum(reach, np.linalg.norm(tails_a[rows] - heads_a[rows], axis=1))[:, None] * direction
        )
        notes.append(
            f"{len(leaves)} placeholder leaf bones extended along their direction: {', '.join(n for _, n, _ in leaves)}"
        )
    if stubs:
        notes.append(f"{len(stubs)} placeholder bones skinned as segments to their children: {', '.join(stubs)}")
    return HeatSources(np.array(src_bone, np.int64), heads_a, tails_a, notes)


def _inside_length(starts, direction, wanted, vertices, faces, hit_finder) -> np.ndarray:
    """(R,) distance along each ray up to `wanted`, stopped at the first mesh triangle it crosses."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    ends = starts + wanted[:, None] * direction
    finder = hit_finder or GridHitFinder(v, f).hits
    ray, tri = finder(starts, ends)
    t = segment_hit_distance(starts[ray], ends[ray], v[f[tri]])
    first = np.ones(len(starts))
    np.minimum.at(first, ray, np.minimum(t, 1.0))
    return first * wanted


@dataclass
class HeatSolution:
    """values (V, S) heat solutions per source (rows sum to ~1), unconstrained (V,) vertices that
    saw no source (their value is diffused), blind_pieces = mesh pieces skinned without visibility,
    loose = vertices in no triangle."""

    values: np.ndarray
    unconstrained: np.ndarray
    blind_pieces: int
    blind_vertices: int
    loose: int


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) normalised sum of the unit normals of the triangles around each vertex (Blender's heat)."""
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    n = np.cross(a - b, b - c)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-300)
    corners = faces.reshape(-1)
    out = np.stack([np.bincount(corners, np.repeat(n[:, a], 3), len(vertices)) for a in range(3)], 1)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-300)


def cotangent_system(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Blender's heat Laplacian, symmetric form: off-diagonal triplets (rows, cols, -w), each edge once
    per direction, with w = the sum over the edge's triangles of cot / (triangles on the edge), and
    areas (V,) = Blender's per-vertex area A_v (the row scale is 0.5 / A_v). Diagonal entries are the
    row sums of w."""
    p = [vertices[faces[:, i]] for i in range(3)]
    cross = np.linalg.norm(np.cross(p[1] - p[0], p[2] - p[0]), axis=1)  # |cross| at every corner: 2 x area
    dots = [((p[(i + 1) % 3] - p[i]) * (p[(i + 2) % 3] - p[i])).sum(1) for i in range(3)]  # at corner i
    flat = cross <= np.finfo(np.float32).eps  # Blender's cotangent is 0 there
    cots = [np.where(flat, 0.0, d / np.where(flat, 1.0, cross)) for d in dots]
    n = len(vertices)
    edge = np.sort(np.concatenate([faces[:, [(i + 1) % 3, (i + 2) % 3]] for i in range(3)]), 1)  # facing corner i
    key, inverse, count = np.unique(edge[:, 0] * n + edge[:, 1], return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    weight = np.bincount(inverse, np.concatenate(cots) / count[inverse], len(key))

    obtuse = [d < 0 for d in dots]
    which = np.where(obtuse[0], 0, np.where(obtuse[1], 1, np.where(obtuse[2], 2, -1)))
    sq = [np.sum((p[(i + 1) % 3] - p[(i + 2) % 3]) ** 2, 1) for i in range(3)]  # |edge facing corner i|^2
    corner_area = []
    for i in range(3):
        j, k = (i + 1) % 3, (i + 2) % 3
        voronoi = 0.25 * (cots[j] * sq[j] + cots[k] * sq[k])
        split = np.where(which == i, 0.5 * cross, 0.25 * cross)
        corner_area.append(np.where(which < 0, voronoi, split))
    areas = np.bincount(faces.T.reshape(-1), np.concatenate(corner_area), n)
    a, b = key // n, key % n
    return np.concatenate([a, b]), np.concatenate([b, a]), -np.concatenate([weight, weight]), areas


def closest_points32(points: np.ndarray, heads: np.ndarray, tails: np.ndarray) -> np.ndarray:
    """(R, 3) float32 closest point of segment [heads[r], tails[r]] to points[r], computed as
    Blender's closest_to_line_segment_v3 is (float32, clamped at the ends)."""
    p, h, t = (np.asarray(x, np.float32) for x in (points, heads, tails))
    u, d = t - h, p - h
    uu = (u[:, 0] * u[:, 0] + u[:, 1] * u[:, 1]) + u[:, 2] * u[:, 2]
    ud = (u[:, 0] * d[:, 0] + u[:, 1] * d[:, 1]) + u[:, 2] * d[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = ud / uu
    inner = h + u * lam[:, None]
    return np.where((lam <= 0)[:, None], h, np.where((lam >= 1)[:, None], t, inner))


def heat_solution(
    vertices,
    faces,
    sources: HeatSources,
    *,
    hit_finder: HitFinder | None = None,
    linear_solver=None,
    chunk: int = 16384,
    progress=None,
) -> HeatSolution:
    """Solve bone heat (module docstring) for every source. `hit_finder` (rays.py contract; default
    `GridHitFinder`), `linear_solver(system, rhs) -> solution` (default `sparse.solve_numpy`)."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64).reshape(-1, 3)
    num_v, num_s = len(v), len(sources.bone)
    v32 = v.astype(np.float32)
    normals = vertex_normals(v, f)
    in_face = np.zeros(num_v, bool)
    in_face[f.reshape(-1)] = True

    # nearest sources by Blender's normal-weighted distance
    mindist = np.empty(num_v)
    near_v, near_s = [], []
    for start in range(0, num_v, chunk):
        end = min(num_v, start + chunk)
        d = _heat_distance(v[start:end], normals[start:end], sources.heads, sources.tails)
        mindist[start:end] = d.min(1)
        rows, cols = np.nonzero(d <= mindist[start:end, None] * (1.0 + DISTANCE_EPSILON))
        near_v.append(rows + start)
        near_s.append(cols)
        if progress is not None:
            progress.update(0.2 * end / num_v, "skinning: distances")
    near_v, near_s = np.concatenate(near_v), np.concatenate(near_s)

    # visibility of each candidate's closest point (vertices in no triangle see everything, as in Blender)
    tested = in_face[near_v]
    ray_v, ray_s = near_v[tested], near_s[tested]
    targets = closest_points32(v32[ray_v], sources.heads[ray_s], sources.tails[ray_s])
    finder = hit_finder or GridHitFinder(v, f).hits
    hits = finder(v[ray_v], targets.astype(np.float64))
    if progress is not None:
        progress.update(0.45, "skinning: visibility")
    blocked = blocked_by_front_faces(v32, f, v32[ray_v], targets, ray_v, hits, MeshAdjacency(f, num_v))
    visible = np.ones(len(near_v), bool)
    visible[np.flatnonzero(tested)[blocked]] = False

    # mesh pieces where no vertex sees a source are solved second, glued to the sighted surface
    piece = connected_labels(num_v, np.repeat(f[:, 0], 2), f[:, 1:].reshape(-1)) if len(f) else np.arange(num_v)
    sees = np.zeros(num_v, bool)
    sees[near_v[visible]] = True
    piece_sees = np.zeros(int(piece.max()) + 1 if num_v else 0, bool)
    np.logical_or.at(piece_sees, piece, sees)
    blind = ~piece_sees[piece] & in_face
    blind_pieces = len(np.unique(piece[blind]))
    if not (in_face & ~blind).any():  # nothing sees a source: take the nearest ones without visibility
        visible[:] = True
        blind[:] = False

    use_v, use_s = near_v[visible], near_s[visible]
    count = np.bincount(use_v, minlength=num_v).astype(np.float64)
    h = np.where(count > 0, count / np.maximum(mindist, MIN_DISTANCE) ** 2, 0.0)
    p_rows = _sparse_rows(use_v, use_s, 1.0 / np.maximum(count[use_v], 1.0), num_s)

    laplacian = cotangent_system(v, f)
    areas = laplacian[3]
    active = (areas > 0) & in_face
    values = np.zeros((num_v, num_s))
    loose = ~active
    loose_pairs = loose[use_v]
    values[use_v[loose_pairs], use_s[loose_pairs]] = 1.0 / count[use_v[loose_pairs]]
    solve = linear_solver or solve_numpy
    sighted = active & ~blind
    values[sighted] = _solve_screened(laplacian, sighted, h, p_rows(sighted), v, solve)
    if progress is not None:
        progress.update(0.85, "skinning: heat solved")
    glued = active & blind
    if glued.any():
        nearest, distance = nearest_points(v[glued], v[sighted])
        h_glued = np.zeros(num_v)
        h_glued[glued] = 1.0 / np.maximum(distance, MIN_DISTANCE) ** 2
        values[glued] = _solve_screened(laplacian, glued, h_glued, values[sighted][nearest], v, solve)
    if progress is not None:
        progress.update(1.0, "skinning: heat solved")
    return HeatSolution(values, count == 0, blind_pieces, int(blind.sum()), int(loose.sum()))


def _sparse_rows(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, num_cols: int):
    """A function mask (V,) -> the dense rows (mask.sum(), num_cols) of a sparse (V, num_cols) matrix."""

    def dense(mask: np.ndarray) -> np.ndarray:
        index = np.cumsum(mask) - 1
        out = np.zeros((int(mask.sum()), num_cols))
        on = mask[rows]
        out[index[rows[on]], cols[on]] = vals[on]
        return out

    return dense


def _solve_screened(
    laplacian, mask: np.ndarray, h: np.ndarray, targets: np.ndarray, points: np.ndarray, solve
) -> np.ndarray:
    """Solve (L_cot + diag(2 A h)) x = 2 A h targets on the vertices in `mask` (edges leaving the
    mask dropped). laplacian = `cotangent_system`'s (rows, cols, vals, areas); targets (M, S)."""
    rows, cols, vals, areas = laplacian
    if not mask.any():
        return np.zeros((0, targets.shape[1]))
    index = np.full(len(mask), -1)
    index[mask] = np.arange(int(mask.sum()))
    keep = mask[rows] & mask[cols]
    diag = np.flatnonzero(mask)
    degree = np.bincount(rows[keep], weights=-vals[keep], minlength=len(mask))[diag]
    screen = 2.0 * areas[diag] * h[diag]
    system = SymmetricSystem(
        np.concatenate([index[rows[keep]], np.arange(len(diag))]),
        np.concatenate([index[cols[keep]], np.arange(len(diag))]),
        np.concatenate([vals[keep], (1.0 + RIDGE) * degree + screen]),
        len(diag),
        points[diag],
    )
    return solve(system, screen[:, None] * targets)


def _heat_distance(points, normals, heads, tails) -> np.ndarray:
    """(P, S) Blender's heat distance |p - c| / (0.5 (cos + 1.001)) of points to every segment, c the
    closest point and cos the cosine between p - c and the normal; matrix products, about the
    points' mean (float64 keeps the 1e-4 ties exact enough)."""
    centre = points.mean(0)
    p, h = points - centre, heads - centre
    e = tails - heads
    ee = np.maximum((e * e).sum(1), 1e-300)
    ph = p @ e.T - (h * e).sum(1)  # (p - h) . e
    t = np.clip(ph / ee, 0.0, 1.0)
    d2 = (p * p).sum(1)[:, None] - 2.0 * (p @ h.T) + (h * h).sum(1) - t * (2.0 * ph - t * ee)
    dist = np.sqrt(np.maximum(d2, 0.0))
    along_normal = (p * normals).sum(1)[:, None] - normals @ h.T - t * (normals @ e.T)  # (p - c) . n
    cosine = along_normal / np.where(dist > 0, dist, 1.0)
    return dist / (0.5 * (cosine + 1.001))
