"""Symmetric positive definite sparse systems for bone heat, in numpy + stdlib only.

`SymmetricSystem` holds K (n x n, COO triplets with repeats summed) and the points the rows belong
to (n, 3). A linear solver is `solver(system, rhs (n, m)) -> (n, m)`; the add-on (no scipy) uses
`solve_numpy`, the backend passes a sparse direct factorisation (scipy) instead.

`solve_numpy`: a dense Cholesky solve up to `dense_limit` unknowns; above that, block conjugate
gradients preconditioned by a smoothed-aggregation multigrid V-cycle (aggregates = grid cells of
the points split into their connected pieces, so two sheets a cell apart never merge; damped Jacobi
smoothing; a dense inverse on the coarsest level), to a relative residual of `tolerance` per column.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np


@dataclass
class CsrMatrix:
    """Compressed sparse rows: indptr (n+1,), indices (nnz,), data (nnz,), shape (n, m)."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    shape: tuple[int, int]
    _passes: list | None = field(default=None, repr=False, compare=False)  # cached layout for __matmul__

    @classmethod
    def from_coo(cls, rows, cols, vals, shape) -> CsrMatrix:
        """Repeated (row, col) entries are summed; explicit zeros are dropped."""
        rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
        key, inverse = np.unique(rows * shape[1] + cols, return_inverse=True)
        data = np.bincount(inverse, weights=np.asarray(vals, np.float64), minlength=len(key))
        keep = data != 0
        key, data = key[keep], data[keep]
        r = key // shape[1]
        return cls(np.searchsorted(r, np.arange(shape[0] + 1)), key % shape[1], data, shape)

    def rows(self) -> np.ndarray:
        return np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))

    def diagonal(self) -> np.ndarray:
        r = self.rows()
        on = r == self.indices
        out = np.zeros(self.shape[0])
        out[r[on]] = self.data[on]
        return out

    def transpose(self) -> CsrMatrix:
        return CsrMatrix.from_coo(self.indices, self.rows(), self.data, (self.shape[1], self.shape[0]))

    def __matmul__(self, other):
        if isinstance(other, CsrMatrix):
            return _sparse_product(self, other)
        x = np.asarray(other)
        return _csr_dense(self, x)

    def toarray(self) -> np.ndarray:
        out = np.zeros(self.shape)
        np.add.at(out, (self.rows(), self.indices), self.data)
        return out


def _csr_dense(a: CsrMatrix, x: np.ndarray) -> np.ndarray:
    """a @ x for dense x (m,) or (m, k): entries taken by their position within the row, so each pass
    adds one (row, col, value) per row with plain fancy indexing (rows are unique within a pass)."""
    if a._passes is None:
        counts = np.diff(a.indptr)
        position = np.arange(len(a.indices)) - np.repeat(a.indptr[:-1], counts)
        order = np.argsort(position, kind="stable")
        bounds = np.searchsorted(position[order], np.arange(int(counts.max(initial=0)) + 1))
        rows, cols, vals = a.rows()[order], a.indices[order], a.data[order]
        a._passes = [(rows[lo:hi], cols[lo:hi], vals[lo:hi].astype(x.dtype)) for lo, hi in itertools.pairwise(bounds)]
    vector = x.ndim == 1
    x2 = x[:, None] if vector else x
    out = np.zeros((a.shape[0], x2.shape[1]), x2.dtype)
    for rows, cols, vals in a._passes:
        out[rows] += vals[:, None] * x2[cols]
    return out[:, 0] if vector else out


def _sparse_product(a: CsrMatrix, b: CsrMatrix) -> CsrMatrix:
    """a @ b for two CsrMatrix: every a[i, j] b[j, l] product, summed by (i, l)."""
    a_rows = a.rows()
    count = np.diff(b.indptr)[a.indices]
    out_rows = np.repeat(a_rows, count)
    first = np.repeat(b.indptr[a.indices], count)
    offsets = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    picked = first + offsets
    vals = np.repeat(a.data, count) * b.data[picked]
    return CsrMatrix.from_coo(out_rows, b.indices[picked], vals, (a.shape[0], b.shape[1]))


def _diag_matrix(values: np.ndarray) -> CsrMatrix:
    n = len(values)
    return CsrMatrix(np.arange(n + 1), np.arange(n), np.asarray(values, np.float64), (n, n))


def _add(a: CsrMatrix, b: CsrMatrix, scale_b: float) -> CsrMatrix:
    rows = np.concatenate([a.rows(), b.rows()])
    return CsrMatrix.from_coo(
        rows, np.concatenate([a.indices, b.indices]), np.concatenate([a.data, scale_b * b.data]), a.shape
    )


@dataclass
class SymmetricSystem:
    """K (n, n) symmetric positive definite as COO triplets (repeats summed) + points (n, 3)."""

    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    n: int
    points: np.ndarray

    def csr(self) -> CsrMatrix:
        return CsrMatrix.from_coo(self.rows, self.cols, self.vals, (self.n, self.n))


def solve_numpy(
    system: SymmetricSystem,
    rhs: np.ndarray,
    *,
    dense_limit: int = 2500,
    tolerance: float = 1e-3,
    max_iterations: int = 500,
    progress=None,
) -> np.ndarray:
    """(n, m) solution of K X = rhs (see the module docstring)."""
    k = system.csr()
    b = np.asarray(rhs, np.float64)
    if system.n <= dense_limit:
        dense = k.toarray()
        return np.linalg.solve(dense, b)
    hierarchy = Multigrid(k, system.points, coarsest=dense_limit)
    # float32 vectors: the iteration is memory bound and the tolerance is far above float32 precision
    return block_cg(k, b.astype(np.float32), hierarchy.vcycle, tolerance, max_iterations, progress).astype(np.float64)


def block_cg(k, b: np.ndarray, precondition, tolerance: float, max_iterations: int, progress=None) -> np.ndarray:
    """Preconditioned conjugate gradients on every column of b at once (independent recurrences)."""
    x = np.zeros_like(b)
    r = b.copy()
    scale = np.linalg.norm(b, axis=0)
    scale[scale == 0] = 1.0
    z = precondition(r)
    p = z.copy()
    rz = (r * z).sum(0)
    for iteration in range(max_iterations):
        q = k @ p
        alpha = rz / np.where((pq := (p * q).sum(0)) > 0, pq, 1.0)
        x += p * alpha
        r -= q * alpha
        residual = np.linalg.norm(r, axis=0) / scale
        if progress is not None:
            progress.update(min(1.0, np.log(max(residual.max(), 1e-300)) / np.log(tolerance)), "skinning: solving")
        if residual.max() < tolerance:
            break
        z = precondition(r)
        rz_new = (r * z).sum(0)
        p = z + p * (rz_new / np.where(rz > 0, rz, 1.0))
        rz = rz_new
    return x


class Multigrid:
    """Smoothed-aggregation hierarchy of a symmetric positive definite CsrMatrix (see module doc).
    Jacobi weight 4 / (3 rho), rho = spectral radius of D^-1 A estimated by power iteration."""

    def __init__(self, k: CsrMatrix, points: np.ndarray, coarsest: int = 2500, ratio: float = 8.0):
        self.levels: list[tuple[CsrMatrix, CsrMatrix, CsrMatrix, np.ndarray]] = []  # (A, P, P^T, w / diag)
        a, pts = k, np.asarray(points, np.float64)
        while a.shape[0] > coarsest:
            groups = aggregate(pts, a, ratio)
            count = int(groups.max()) + 1
            if count > 0.85 * a.shape[0]:
                break
            n = a.shape[0]
            inv_diag = 1.0 / a.diagonal()
            omega = 4.0 / (3.0 * _jacobi_radius(a, inv_diag))
            p0 = CsrMatrix(np.arange(n + 1), groups, np.ones(n), (n, count))
            p = _add(p0, _diag_matrix(inv_diag) @ (a @ p0), -omega)  # P = (I - w D^-1 A) P0
            pt = p.transpose()
            self.levels.append((a, p, pt, omega * inv_diag))
            a = pt @ (a @ p)
            sizes = np.bincount(groups, minlength=count)
            pts = np.stack([np.bincount(groups, pts[:, c], minlength=count) / sizes for c in range(3)], 1)
        self.coarse_inverse = np.linalg.inv(a.toarray())

    def vcycle(self, b: np.ndarray, level: int = 0) -> np.ndarray:
        if level == len(self.levels):
            return (self.coarse_inverse @ b).astype(b.dtype)
        a, p, pt, smooth = self.levels[level]
        smooth = smooth.astype(b.dtype)
        x = smooth[:, None] * b
        x += p @ self.vcycle(pt @ (b - a @ x), level + 1)
        x += smooth[:, None] * (b - a @ x)
        return x


def _jacobi_radius(a: CsrMatrix, inv_diag: np.ndarray, iterations: int = 12) -> float:
    """Spectral radius of D^-1 A (power iteration from a fixed start, 5% margin)."""
    x = np.cos(np.arange(a.shape[0]) * 0.618) + 1.5
    radius = 1.0
    for _ in range(iterations):
        y = inv_diag * (a @ x)
        radius = float(np.linalg.norm(y) / max(np.linalg.norm(x), 1e-300))
        x = y / max(np.linalg.norm(y), 1e-300)
    return 1.05 * radius


def aggregate(points: np.ndarray, a: CsrMatrix, ratio: float) -> np.ndarray:
    """(n,) aggregate id per row: grid cells sized for about `ratio` rows each (surface density),
    split into pieces connected by a's off-diagonal entries inside the cell."""
    n = len(points)
    rows = a.rows()
    off = rows != a.indices
    r, c = rows[off], a.indices[off]
    lo = points.min(0)
    extent = float(np.ptp(points, axis=0).max()) or 1.0
    size = extent * np.sqrt(ratio / max(n, 1))
    groups = np.arange(n)
    for _ in range(6):
        cell = np.floor((points - lo) / size).astype(np.int64)
        dims = cell.max(0) + 1
        key = (cell[:, 2] * dims[1] + cell[:, 1]) * dims[0] + cell[:, 0]
        same = key[r] == key[c]
        groups = connected_labels(n, r[same], c[same])
        achieved = n / (int(groups.max()) + 1)
        if achieved >= 0.7 * ratio:
            break
        size *= np.sqrt(ratio / achieved)
    return groups


def connected_labels(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n,) component id 0..C-1 of each node of the undirected graph with edges (a[i], b[i]), numbered
    by first appearance (hooking to the smaller label + pointer jumping)."""
    label = np.arange(n)
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    while True:
        la, lb = label[a], label[b]
        low = np.minimum(la, lb)
        new = label.copy()
        np.minimum.at(new, la, low)
        np.minimum.at(new, lb, low)
        while True:  # pointer jumping until every node points at a root
            jumped = new[new]
            if np.array_equal(jumped, new):
                break
            new = jumped
        if np.array_equal(new, label):
            break
        label = new
    _, first = np.unique(label, return_index=True)
    rank = np.empty(n, np.int64)
    roots = label[np.sort(first)]
    rank[roots] = np.arange(len(roots))
    return rank[label]
