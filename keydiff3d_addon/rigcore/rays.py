"""Ray-segment tests against a triangle mesh for bone heat's visibility (numpy + stdlib only).

Frames and shapes: vertices (V, 3), faces (F, 3) int triangles, segments as starts/ends (R, 3), all
in one frame.

Two layers:
- a *hit finder* answers "which triangles does each segment cross" (any facing) quickly and may miss a
  crossing that grazes an edge: `GridHitFinder` here (numpy, the add-on's), embree in the backend.
  Contract: `hits(starts, ends) -> (ray (M,), triangle (M,))`.
- the *decision* (`blocked_by_front_faces`) re-tests the finder's hits, every triangle sharing a
  vertex with them and the triangles around the segment's own start vertex (those through the start
  vertex only where rounding can decide them) with Blender's watertight ray-triangle test in
  float32, operation for operation as Blender's bone heat runs it
  (`heat_ray_source_visible` in meshlaplacian.cc; Woop, Benthin and Wald 2013). Rays from a vertex
  that run along one of its own triangles are decided by float32 rounding in Blender; reproducing
  that rounding keeps our weights equal to Blender's on low-poly game meshes, where such rays are
  common.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

HitFinder = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

_F32 = np.float32
_FACING = _F32(-1e-5)  # a triangle blocks only when the ray enters it from the front (n . dir < -1e-5)
_START = _F32(1e-5)  # Blender's ray starts this fraction along the segment and stops as far before its end
NEAR_PLANE_ULPS = 3.0  # see `blocked_by_front_faces`


class MeshAdjacency:
    """Triangles around each vertex (CSR): `ring(vertices)` -> triangle indices, with repeats."""

    def __init__(self, faces: np.ndarray, num_vertices: int):
        f = np.asarray(faces, np.int64)
        corner_vertex = f.reshape(-1)
        order = np.argsort(corner_vertex, kind="stable")
        self.triangles = (order // 3).astype(np.int64)
        self.start = np.searchsorted(corner_vertex[order], np.arange(num_vertices + 1))

    def ring_pairs(self, owner: np.ndarray, vertex: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(owner (M,), triangle (M,)): for each i, every triangle touching vertex[i], tagged owner[i]."""
        lo, hi = self.start[vertex], self.start[vertex + 1]
        count = hi - lo
        rows = np.repeat(np.asarray(owner, np.int64), count)
        offsets = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        return rows, self.triangles[np.repeat(lo, count) + offsets]


def blocked_by_front_faces(
    vertices32: np.ndarray,
    faces: np.ndarray,
    origins: np.ndarray,
    targets: np.ndarray,
    origin_vertex: np.ndarray,
    hits: tuple[np.ndarray, np.ndarray],
    adjacency: MeshAdjacency,
    chunk: int = 1 << 20,
) -> np.ndarray:
    """(R,) bool: is the segment from `origins[r]` (the mesh vertex `origin_vertex[r]`) to
    `targets[r]` blocked, by Blender's bone-heat rule? `origins`/`targets` (R, 3) float32 as Blender
    holds them; `hits` = a hit finder's answer for these segments.

    A triangle through the origin vertex meets the ray's line only at that vertex, `_START` x the
    segment behind the ray's start, so only float32 rounding makes it a hit, and only where the start
    lies within rounding of the triangle's plane: such triangles are re-tested only where the start is
    within `NEAR_PLANE_ULPS` float32 units (of the largest coordinate) of their plane. Rounding the
    start alone can move it 0.9 units; the flips seen were all under 0.3."""
    f = np.asarray(faces, np.int64)
    o = np.asarray(origins, _F32)
    vec = np.asarray(targets, _F32) - o
    start = o + vec * _START
    vec = vec * _F32(1.0 - 2 * _START)
    length2 = (vec[:, 0] * vec[:, 0] + vec[:, 1] * vec[:, 1]) + vec[:, 2] * vec[:, 2]
    length = np.sqrt(length2)
    valid = length2 > _F32(1e-35)
    direction = vec * (_F32(1.0) / np.where(valid, length, _F32(1.0)))[:, None]
    precalc = _watertight_precalc(direction)
    normals = _unit_normals32(vertices32, f)
    unit = NEAR_PLANE_ULPS * float(np.finfo(_F32).eps) * max(float(np.abs(vertices32).max(initial=0.0)), 1e-30)
    with np.errstate(divide="ignore"):
        near_plane_cosine = np.where(valid, unit / (float(_START) * length.astype(np.float64)), np.inf)
    origin_vertex = np.asarray(origin_vertex, np.int64)

    def near_plane(ray: np.ndarray, tri: np.ndarray) -> np.ndarray:
        return np.abs(_dot(normals[tri], direction[ray])) < near_plane_cosine[ray]

    def worth_testing(ray: np.ndarray, tri: np.ndarray) -> np.ndarray:
        through_origin = (f[tri] == origin_vertex[ray, None]).any(1)
        return ~through_origin | near_plane(ray, tri)

    hit_ray, hit_tri = (np.asarray(x, np.int64) for x in hits)
    # every hit's neighbours, those of hits through the origin too: a ray that leaves its own triangle
    # across the far edge meets the blocker there; then only what can decide is tested
    corner_ray, corner_vertex = np.repeat(hit_ray, 3), f[hit_tri].reshape(-1)
    other = corner_vertex != origin_vertex[corner_ray]  # the origin's own ring is added below anyway
    ring_ray, ring_tri = adjacency.ring_pairs(corner_ray[other], corner_vertex[other])  # edges grazed
    rays, tris = np.concatenate([hit_ray, ring_ray]), np.concatenate([hit_tri, ring_tri])
    kept = worth_testing(rays, tris)
    own_ray, own_tri = adjacency.ring_pairs(np.arange(len(o)), origin_vertex)
    near = near_plane(own_ray, own_tri)
    rays = np.concatenate([rays[kept], own_ray[near]])  # repeats only cost a repeated test
    tris = np.concatenate([tris[kept], own_tri[near]])
    blocked = np.zeros(len(o), bool)
    for s in range(0, len(rays), chunk):
        r, t = rays[s : s + chunk], tris[s : s + chunk]
        front = (_dot(normals[t], direction[r]) < _FACING) & valid[r]  # the cheap half first
        r, t = r[front], t[front]
        lam = _watertight(start[r], precalc, r, vertices32[f[t, 0]], vertices32[f[t, 1]], vertices32[f[t, 2]])
        blocked[r[lam < length[r]]] = True
    return blocked


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M,) row-wise dot products of (M, 3) arrays, summed in Blender's order."""
    return (a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1]) + a[:, 2] * b[:, 2]


def _unit_normals32(vertices32: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Blender's normal_tri_v3 in float32: normalise((v0 - v1) x (v1 - v2))."""
    v0, v1, v2 = vertices32[faces[:, 0]], vertices32[faces[:, 1]], vertices32[faces[:, 2]]
    a, b = v0 - v1, v1 - v2
    n = np.stack(
        [
            a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1],
            a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2],
            a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0],
        ],
        1,
    )
    d = (n[:, 0] * n[:, 0] + n[:, 1] * n[:, 1]) + n[:, 2] * n[:, 2]
    ok = d > _F32(1e-35)
    return np.where(ok[:, None], n * (_F32(1.0) / np.sqrt(np.where(ok, d, _F32(1.0))))[:, None], _F32(0.0))


def _watertight_precalc(direction: np.ndarray):
    """Per ray: the dominant axis kz, the other two (kx, ky, swapped for a negative kz so winding is
    kept) and the shear constants (sx, sy, sz), in float32."""
    a = np.abs(direction)
    kz = np.where(a[:, 0] > a[:, 1], np.where(a[:, 0] > a[:, 2], 0, 2), np.where(a[:, 1] > a[:, 2], 1, 2))
    kx = np.where(kz != 2, kz + 1, 0)
    ky = np.where(kx != 2, kx + 1, 0)
    rows = np.arange(len(direction))
    flip = direction[rows, kz] < 0
    kx, ky = np.where(flip, ky, kx), np.where(flip, kx, ky)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        inv = _F32(1.0) / direction[rows, kz]
        return kx, ky, kz, direction[rows, kx] * inv, direction[rows, ky] * inv, inv


def _watertight(start, precalc, ray, v0, v1, v2) -> np.ndarray:
    """(M,) float32 hit distance of ray `ray[i]` (origin start[i]) with triangle (v0, v1, v2)[i], +inf
    where it misses (edges count for exactly one of two neighbours; a hit at distance 0 counts)."""
    kx, ky, kz, sx, sy, sz = (p[ray] for p in precalc)
    m = np.arange(len(ray))
    a, b, c = v0 - start, v1 - start, v2 - start
    a_kx, a_ky, a_kz = a[m, kx], a[m, ky], a[m, kz]
    b_kx, b_ky, b_kz = b[m, kx], b[m, ky], b[m, kz]
    c_kx, c_ky, c_kz = c[m, kx], c[m, ky], c[m, kz]
    ax, ay = a_kx - sx * a_kz, a_ky - sy * a_kz
    bx, by = b_kx - sx * b_kz, b_ky - sy * b_kz
    cx, cy = c_kx - sx * c_kz, c_ky - sy * c_kz
    u = cx * by - cy * bx
    v = ax * cy - ay * cx
    w = bx * ay - by * ax
    with np.errstate(all="ignore"):
        det = (u + v) + w
        t = ((u * a_kz + v * b_kz) + w * c_kz) * sz
        sign_t = np.where(np.signbit(det), -t, t)
        lam = t * (_F32(1.0) / det)
    miss = ((u < 0) | (v < 0) | (w < 0)) & ((u > 0) | (v > 0) | (w > 0))
    miss |= (det == 0) | ~np.isfinite(det) | (sign_t < 0)
    return np.where(miss, _F32(np.inf), lam)


class GridHitFinder:
    """Numpy hit finder: triangles binned in a uniform grid, segments sampled at half a cell, every
    triangle of a visited cell tested (float64 Moeller-Trumbore, edges widened by `tolerance`).

    Conservative by construction: a triangle is binned into every cell its bounding box, grown by
    half a sample step, overlaps, so the sample nearest any crossing lies in one of its cells.
    Cost grows with (segment length / edge length): fine for game meshes and tests; the backend and
    the add-on pass faster finders for large meshes."""

    def __init__(self, vertices, faces, cell: float | None = None, tolerance: float = 1e-7, chunk: int = 1 << 21):
        v = np.asarray(vertices, np.float64)
        self.faces = np.asarray(faces, np.int64)
        self.tri = v[self.faces]  # (F, 3, 3)
        self.tolerance, self.chunk = tolerance, chunk
        if len(self.faces) == 0:
            self.cell, self.origin = 1.0, np.zeros(3)
            self.keys, self.tris = np.zeros(0, np.int64), np.zeros(0, np.int64)
            return
        edges = np.linalg.norm(self.tri - np.roll(self.tri, 1, axis=1), axis=2)
        self.cell = float(cell) if cell else max(2.0 * float(np.median(edges)), 1e-12)
        self.step = 0.5 * self.cell
        lo, hi = self.tri.min(1) - 0.5 * self.step, self.tri.max(1) + 0.5 * self.step
        self.origin = lo.min(0)
        c_lo = np.floor((lo - self.origin) / self.cell).astype(np.int64)
        c_hi = np.floor((hi - self.origin) / self.cell).astype(np.int64)
        self.dims = c_hi.max(0) + 1
        span = c_hi - c_lo + 1
        count = span.prod(1)
        tri_of = np.repeat(np.arange(len(self.faces)), count)
        local = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        sx, sy = span[tri_of, 0], span[tri_of, 1]
        cells = c_lo[tri_of] + np.stack([local % sx, (local // sx) % sy, local // (sx * sy)], 1)
        keys = self._key(cells)
        order = np.argsort(keys, kind="stable")
        self.keys, self.tris = keys[order], tri_of[order]

    def _key(self, cells: np.ndarray) -> np.ndarray:
        return (cells[:, 2] * self.dims[1] + cells[:, 1]) * self.dims[0] + cells[:, 0]

    def hits(self, starts, ends) -> tuple[np.ndarray, np.ndarray]:
        """(ray (M,), triangle (M,)) of every triangle each segment [start, end] crosses."""
        s, e = np.asarray(starts, np.float64), np.asarray(ends, np.float64)
        if len(self.keys) == 0 or len(s) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        length = np.linalg.norm(e - s, axis=1)
        samples = np.ceil(length / self.step).astype(np.int64) + 1
        out_r, out_t = [], []
        first = 0
        while first < len(s):  # batches of rays whose candidate lists fit in `chunk`
            last = first + max(1, int(np.searchsorted(np.cumsum(samples[first:]) * 16, self.chunk)))
            r, t = self._batch(s, e, samples, first, min(last, len(s)))
            out_r.append(r)
            out_t.append(t)
            first = last
        return np.concatenate(out_r), np.concatenate(out_t)

    def _batch(self, s, e, samples, first, last):
        rays = np.arange(first, last)
        n = samples[rays]
        ray_of = np.repeat(rays, n)
        k = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        frac = k / np.maximum(n[ray_of - first] - 1, 1)
        points = s[ray_of] + frac[:, None] * (e[ray_of] - s[ray_of])
        cells = np.floor((points - self.origin) / self.cell).astype(np.int64)
        inside = ((cells >= 0) & (cells < self.dims)).all(1)
        key = np.unique(ray_of[inside] * (int(self.dims.prod()) + 1) + self._key(cells[inside]))
        ray_of, cell_key = key // (int(self.dims.prod()) + 1), key % (int(self.dims.prod()) + 1)
        lo = np.searchsorted(self.keys, cell_key, "left")
        hi = np.searchsorted(self.keys, cell_key, "right")
        count = hi - lo
        cand_r = np.repeat(ray_of, count)
        cand_t = self.tris[
            np.repeat(lo, count) + np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        ]
        pair = np.unique(cand_r * len(self.faces) + cand_t)
        cand_r, cand_t = pair // len(self.faces), pair % len(self.faces)
        hit = segment_crosses(s[cand_r], e[cand_r], self.tri[cand_t], self.tolerance)
        return cand_r[hit], cand_t[hit]


def segment_crosses(starts, ends, triangles, tolerance: float = 0.0) -> np.ndarray:
    """(M,) bool: does segment [starts[i], ends[i]] cross triangle triangles[i] (3, 3)? Float64
    Moeller-Trumbore; barycentric bounds widened by `tolerance`, either facing."""
    return segment_hit_distance(starts, ends, triangles, tolerance) <= 1.0


def segment_hit_distance(starts, ends, triangles, tolerance: float = 0.0) -> np.ndarray:
    """(M,) where along each segment (0 = start, 1 = end) it crosses its triangle, +inf if it does not."""
    d = ends - starts
    e1 = triangles[:, 1] - triangles[:, 0]
    e2 = triangles[:, 2] - triangles[:, 0]
    p = np.cross(d, e2)
    det = (e1 * p).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / det
        tv = starts - triangles[:, 0]
        u = (tv * p).sum(1) * inv
        q = np.cross(tv, e1)
        v = (d * q).sum(1) * inv
        t = (e2 * q).sum(1) * inv
        ok = (det != 0) & (u >= -tolerance) & (v >= -tolerance) & (u + v <= 1 + tolerance) & (t >= 0) & (t <= 1)
    return np.where(ok, t, np.inf)


def nearest_points(queries, points, per_cell: float = 4.0, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(index (Q,), distance (Q,)) of the nearest of `points` (N, 3) to each query (Q, 3): a uniform
    grid of about `per_cell` points per occupied cell, the 27 cells around each query searched, and
    exhaustive search (in chunks) for queries with no point within one cell size."""
    q, p = np.asarray(queries, np.float64), np.asarray(points, np.float64)
    if len(p) == 0:
        raise ValueError("nearest_points needs at least one point")
    lo = np.minimum(p.min(0), q.min(0)) if len(q) else p.min(0)
    extent = float(np.ptp(p, axis=0).max()) or 1.0
    cell = extent * np.sqrt(per_cell / len(p))
    dims = np.floor((np.maximum(p.max(0), q.max(0) if len(q) else p.max(0)) - lo) / cell).astype(np.int64) + 3

    def key(c):
        return (c[:, 2] * dims[1] + c[:, 1]) * dims[0] + c[:, 0]

    p_key = key(np.floor((p - lo) / cell).astype(np.int64) + 1)
    order = np.argsort(p_key, kind="stable")
    sorted_key = p_key[order]
    q_cell = np.floor((q - lo) / cell).astype(np.int64) + 1
    offsets = np.stack(np.meshgrid(*([np.arange(-1, 2)] * 3), indexing="ij"), -1).reshape(-1, 3)
    best = np.full(len(q), np.inf)
    index = np.zeros(len(q), np.int64)
    for s in range(0, len(q), chunk):
        cells = (q_cell[s : s + chunk, None, :] + offsets[None]).reshape(-1, 3)
        owner = np.repeat(np.arange(s, min(s + chunk, len(q))), len(offsets))
        k = key(cells)
        a, b = np.searchsorted(sorted_key, k, "left"), np.searchsorted(sorted_key, k, "right")
        n = b - a
        who = np.repeat(owner, n)
        cand = order[np.repeat(a, n) + np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)]
        d = np.linalg.norm(p[cand] - q[who], axis=1)
        np.minimum.at(best, who, d)
        hit = d <= best[who]
        index[who[hit]] = cand[hit]
    far = np.flatnonzero(best > cell)  # a nearer point could sit outside the searched block
    for s in range(0, len(far), 64):
        rows = far[s : s + 64]
        d = np.linalg.norm(q[rows, None, :] - p[None], axis=2)
        index[rows], best[rows] = d.argmin(1), d.min(1)
    return index, best
