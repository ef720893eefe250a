"""Fast back ends for rigcore's bone heat skinning: embree ray hits and a scipy sparse direct solve.

`heat_accelerators(vertices, faces)` returns the keyword arguments `compute_skin_weights` takes for
method "heat" (`hit_finder`, `linear_solver`). The numbers they compute are the same as the
add-on's numpy defaults (rigcore re-tests every hit in Blender's float32 arithmetic, and the numpy
solver converges to the same solution); they are only faster (docs/bench/skinning.md).
"""

from __future__ import annotations

import numpy as np

from keydiff3d_addon.rigcore.rays import GridHitFinder
from keydiff3d_addon.rigcore.sparse import SymmetricSystem


class EmbreeHitFinder:
    """rigcore hit-finder contract (`rays.py`) on embree: every triangle each segment crosses, found
    by repeated first-hit queries that restart just past the previous hit."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, max_hits: int = 32):
        from embreex import rtcore_scene
        from embreex.mesh_construction import TriangleMesh

        v = np.asarray(vertices, np.float64)
        self.origin = v.min(0) if len(v) else np.zeros(3)
        self.scale = 1.0 / (float(np.ptp(v, axis=0).max()) or 1.0) if len(v) else 1.0  # unit box: float32 precision
        self.scene = rtcore_scene.EmbreeScene()
        TriangleMesh(
            scene=self.scene,
            vertices=((v - self.origin) * self.scale).astype(np.float32),
            indices=np.asarray(faces, np.int32),
        )
        self.max_hits = max_hits
        self.empty = len(faces) == 0

    def hits(self, starts, ends) -> tuple[np.ndarray, np.ndarray]:
        if self.empty or len(starts) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        s = (np.asarray(starts, np.float64) - self.origin) * self.scale
        d = (np.asarray(ends, np.float64) - self.origin) * self.scale - s
        length = np.linalg.norm(d, axis=1)
        d = d / np.maximum(length, 1e-30)[:, None]
        live = np.flatnonzero(length > 0)
        travelled = np.zeros(len(s))
        out_r, out_t = [], []
        step = 1e-6  # past a hit (unit box), far below any edge length
        for _ in range(self.max_hits):
            if len(live) == 0:
                break
            origins = s[live] + travelled[live, None] * d[live]
            result = self.scene.run(
                origins.astype(np.float32),
                d[live].astype(np.float32),
                dists=(length[live] - travelled[live]).astype(np.float32),
                output=1,
            )
            prim, tfar = np.asarray(result["primID"]), np.asarray(result["tfar"], np.float64)
            hit = prim >= 0
            out_r.append(live[hit])
            out_t.append(prim[hit].astype(np.int64))
            travelled[live[hit]] += tfar[hit] + step
            live = live[hit & (travelled[live] < length[live])]
        return np.concatenate(out_r), np.concatenate(out_t)


def scipy_solver(system: SymmetricSystem, rhs: np.ndarray) -> np.ndarray:
    """Sparse LU of the symmetric positive definite heat system in a geometric nested-dissection
    order of its points (symmetric mode, no pivoting: 1.5-2x faster than SuperLU's own orderings on
    surface meshes), one factorisation for every right-hand side."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    order = nested_dissection_order(system.points, system.rows, system.cols)
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    matrix = sp.csc_matrix((system.vals, (position[system.rows], position[system.cols])), shape=(system.n, system.n))
    factor = splu(matrix, permc_spec="NATURAL", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    solution = np.empty((system.n, np.asarray(rhs).shape[1]))
    solution[order] = factor.solve(np.asarray(rhs, np.float64)[order])
    return solution


MAX_LEVELS = 48  # group ids double per level (int64); a balanced split of 2M points needs 16


def nested_dissection_order(points: np.ndarray, rows: np.ndarray, cols: np.ndarray, leaf: int = 32) -> np.ndarray:
    """(n,) elimination order of a sparse matrix whose rows sit at `points` (n, 3), with off-diagonal
    entries (rows[i], cols[i]): recursive coordinate bisection (each group split at its mean along
    its widest axis, all groups of a level at once), the vertices on the cut's lower side with a
    neighbour across it forming its separator, ordered after both halves (post-order); groups of
    <= `leaf` points, groups the cut cannot split (coincident points) and groups `MAX_LEVELS` deep
    stop. Few fill-in entries for surface meshes."""
    n = len(points)
    rows, cols = np.asarray(rows), np.asarray(cols)
    upper = rows < cols  # each edge once: the matrix is symmetric
    rows, cols = rows[upper], cols[upper]
    group = np.zeros(n, np.int64)
    alive = np.ones(n, bool)
    node = np.zeros(n, np.int64)  # the tree node each point ends in, and that node's depth
    depth = np.zeros(n, np.int64)
    separator = np.zeros(n, bool)
    level = 0
    while alive.any():
        index = np.flatnonzero(alive)
        g = group[index]
        count = np.bincount(g)
        done = count[g] <= leaf
        node[index[done]], depth[index[done]] = g[done], level
        alive[index[done]] = False
        index, g = index[~done], g[~done]
        if len(index) == 0:
            break
        size = np.maximum(np.bincount(g, minlength=len(count)), 1)
        p = points[index]
        mean = np.stack([np.bincount(g, p[:, a], len(count)) / size for a in range(3)], 1)
        spread = np.stack([np.bincount(g, p[:, a] ** 2, len(count)) / size for a in range(3)], 1) - mean**2
        axis = np.argmax(spread, 1)
        side = np.zeros(n, np.int8)
        side[index] = p[np.arange(len(index)), axis[g]] > mean[g, axis[g]]
        # a group the cut does not split (coincident points) or one too deep ends as a leaf here
        upper_count = np.bincount(g, side[index], len(count))
        stuck = ((upper_count == 0) | (upper_count == size))[g] | (level >= MAX_LEVELS)
        node[index[stuck]], depth[index[stuck]] = g[stuck], level
        alive[index[stuck]] = False
        inside = alive[rows] & alive[cols] & (group[rows] == group[cols])  # edges of the groups still split
        rows, cols = rows[inside], cols[inside]
        cut = side[rows] != side[cols]
        cut_rows = np.unique(np.where(side[rows[cut]] == 0, rows[cut], cols[cut]))
        node[cut_rows], depth[cut_rows], separator[cut_rows] = group[cut_rows], level, True
        alive[cut_rows] = False
        group = np.where(alive, 2 * group + side, group)
        level += 1
    shift = level - depth
    key = np.where(separator, ((node + 1) << shift) - 1, node << shift)  # a separator after its subtree
    return np.lexsort((np.where(separator, shift, 0), key))


def heat_accelerators(vertices: np.ndarray, faces: np.ndarray) -> dict:
    """kwargs for `compute_skin_weights(..., method="heat")`: embree hits (rigcore's numpy grid when
    embreex is missing) and the scipy solver."""
    try:
        finder = EmbreeHitFinder(vertices, faces).hits
    except ImportError:
        finder = GridHitFinder(vertices, faces).hits
    return {"hit_finder": finder, "linear_solver": scipy_solver}
