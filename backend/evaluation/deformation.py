"""Deformation measures of a rig: linear blend skinning, vertex error against a reference
deformation, posability (edges torn when one bone turns) and animation fit.

Numpy only. Shapes: vertices (V, 3), dense weights (V, B) (rows sum to 1, or 0 for a vertex no bone
moves: it stays in place, as in Blender), skinning matrices (T, B, 4, 4) mapping rest world
positions to posed world positions (`rigged_assets.Clip.matrices`). Errors are in the vertices'
units unless a docstring says "/ diagonal".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def linear_blend_skinning(vertices: np.ndarray, weights: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """(T, V, 3) = sum_b weights[v, b] (matrices[t, b] @ [v, 1]); rows of `weights` are normalised
    first and vertices whose row is all zero keep their rest position."""
    v = np.asarray(vertices, np.float64)
    w = np.asarray(weights, np.float64)
    total = w.sum(1, keepdims=True)
    w = np.where(total > 0, w / np.maximum(total, 1e-300), 0.0)
    m = np.asarray(matrices, np.float64)
    # blend the matrices per vertex first: (T, V, 3, 4), then apply (cheaper than moving V x B points)
    blended = np.einsum("vb,tbij->tvij", w, m[:, :, :3, :])
    out = np.einsum("tvij,vj->tvi", blended[..., :3], v) + blended[..., 3]
    still = total[:, 0] <= 0
    out[:, still] = v[still]
    return out


def mean_vertex_error(
    vertices: np.ndarray, weights: np.ndarray, reference_weights: np.ndarray, matrices: np.ndarray, chunk: int = 64
) -> float:
    """Mean over frames and vertices of |LBS(weights) - LBS(reference_weights)| (the same skeleton
    and poses, two sets of weights), in the vertices' units."""
    total, count = 0.0, 0
    for start in range(0, len(matrices), chunk):
        m = matrices[start : start + chunk]
        a = linear_blend_skinning(vertices, weights, m)
        b = linear_blend_skinning(vertices, reference_weights, m)
        total += float(np.linalg.norm(a - b, axis=-1).sum())
        count += a.shape[0] * a.shape[1]
    return total / max(count, 1)


# --------------------------------------------------------------------------- posability


def rotation_matrix(axis: np.ndarray, angle: float) -> np.ndarray:
    """(3, 3) rotation by `angle` radians about the unit direction of `axis` (Rodrigues)."""
    axis = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def bend_axis(head: np.ndarray, tail: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """The horizontal axis perpendicular to a bone, about which it is bent (world x for a bone within
    ~8 degrees of vertical). z is up."""
    d = np.asarray(tail, np.float64) - np.asarray(head, np.float64)
    axis = np.cross(d, up)
    norm = np.linalg.norm(axis)
    if norm < 0.15 * (np.linalg.norm(d) or 1.0):
        return np.array([1.0, 0.0, 0.0])
    return axis / norm


def subtree(parents: np.ndarray, bone: int) -> np.ndarray:
    """(B,) bool: `bone` and every bone below it (`parents` parent-first or not)."""
    parents = np.asarray(parents, np.int64)
    inside = np.zeros(len(parents), bool)
    inside[bone] = True
    changed = True
    while changed:
        grow = ~inside & (parents >= 0) & inside[np.maximum(parents, 0)]
        changed = bool(grow.any())
        inside |= grow
    return inside


def bend_matrices(
    heads: np.ndarray, tails: np.ndarray, parents: np.ndarray, bone: int, degrees: float = 35.0
) -> np.ndarray:
    """(B, 4, 4) skinning matrices that turn `bone` and its subtree by `degrees` about its head,
    about `bend_axis`; every other bone stays at rest."""
    m = np.tile(np.eye(4), (len(heads), 1, 1))
    r = rotation_matrix(bend_axis(heads[bone], tails[bone]), np.radians(degrees))
    turn = np.eye(4)
    turn[:3, :3] = r
    turn[:3, 3] = heads[bone] - r @ heads[bone]
    m[subtree(parents, bone)] = turn
    return m


@dataclass
class Posability:
    """Tearing when each bone in turn is bent: `torn` (B,) fraction of the surface's links that tore
    (NaN for bones not tested), `worst` (B,) largest edge stretch ratio. Links are the mesh edges
    (torn when stretched past 2x or shrunk under 0.5x) and, on a mesh split along seams (vertices at
    the same rest position, as glTF stores them), the seams: a seam tears where its copies part by
    more than half the local edge length."""

    torn: np.ndarray
    worst: np.ndarray

    @property
    def mean_torn(self) -> float:
        return float(np.nanmean(self.torn)) if np.isfinite(self.torn).any() else float("nan")


def mesh_edges(faces: np.ndarray) -> np.ndarray:
    """(E, 2) unique undirected edges of triangles (F, 3)."""
    f = np.asarray(faces, np.int64)
    e = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), 1)
    return np.unique(e, axis=0)


def seam_pairs(vertices: np.ndarray, edges: np.ndarray, rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pairs (P, 2), local edge length (P,)): each split copy of a vertex paired with the first copy
    at its rest position, and the mean rest length of the edges at that vertex."""
    from .rigged_assets import weld

    _, group = weld(vertices)
    first = np.full(group.max() + 1, len(group))
    np.minimum.at(first, group, np.arange(len(group)))  # the lowest index of each position
    copies = np.flatnonzero(first[group] != np.arange(len(group)))
    pairs = np.stack([first[group[copies]], copies], 1)
    length_sum = np.bincount(edges.reshape(-1), np.repeat(rest, 2), len(vertices))
    length_count = np.bincount(edges.reshape(-1), minlength=len(vertices))
    local = (length_sum[pairs].sum(1)) / np.maximum(length_count[pairs].sum(1), 1)
    return pairs, local


def posability(
    vertices: np.ndarray,
    faces: np.ndarray,
    weights: np.ndarray,
    heads: np.ndarray,
    tails: np.ndarray,
    parents: np.ndarray,
    bones=None,
    degrees: float = 35.0,
) -> Posability:
    """Bend each of `bones` (default: every bone with weight) by `degrees` and measure tearing
    (`Posability`). `weights` (V, B) columns follow heads/tails/parents (B)."""
    vertices = np.asarray(vertices, np.float64)
    edges = mesh_edges(faces)
    rest = np.linalg.norm(vertices[edges[:, 0]] - vertices[edges[:, 1]], axis=1)
    keep = rest > 1e-12
    edges, rest = edges[keep], rest[keep]
    seams, local = seam_pairs(vertices, edges, rest)
    b_count = len(heads)
    bones = np.flatnonzero(np.asarray(weights).max(0) > 0) if bones is None else np.asarray(bones, np.int64)
    torn, worst = np.full(b_count, np.nan), np.full(b_count, np.nan)
    for b in bones:
        posed = linear_blend_skinning(vertices, weights, bend_matrices(heads, tails, parents, int(b), degrees)[None])[0]
        ratio = np.linalg.norm(posed[edges[:, 0]] - posed[edges[:, 1]], axis=1) / rest
        opened = np.linalg.norm(posed[seams[:, 0]] - posed[seams[:, 1]], axis=1) > 0.5 * local
        torn[b] = float((((ratio > 2.0) | (ratio < 0.5)).sum() + opened.sum()) / (len(edges) + len(seams)))
        worst[b] = float(ratio.max())
    return Posability(torn, worst)


# --------------------------------------------------------------------------- animation fit


def fit_rigid(source: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(4, 4) rigid transform (rotation + translation, no scale) minimising
    sum_v weights[v] |R source[v] + t - target[v]|^2 (weighted Kabsch). Identity when the weights vanish."""
    w = np.asarray(weights, np.float64)
    total = w.sum()
    out = np.eye(4)
    if total <= 1e-12:
        return out
    mu_s = (w[:, None] * source).sum(0) / total
    mu_t = (w[:, None] * target).sum(0) / total
    cov = ((target - mu_t) * w[:, None]).T @ (source - mu_s)
    u, _, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    r = u @ np.diag([1.0, 1.0, d]) @ vt
    out[:3, :3] = r
    out[:3, 3] = mu_t - r @ mu_s
    return out


def animation_fit(vertices: np.ndarray, weights: np.ndarray, targets: np.ndarray) -> float:
    """How well a rig's weight columns can reproduce given deformations: for each frame of
    `targets` (T, V, 3), give each column b the rigid transform best fitting the target vertices
    weighted by weights[:, b] (weighted Procrustes), re-skin with LBS, and take the mean vertex
    error. Asks whether the rig's parts split where the creature bends; in the vertices' units."""
    w = np.asarray(weights, np.float64)
    used = np.flatnonzero(w.max(0) > 0)
    total = 0.0
    for target in targets:
        m = np.tile(np.eye(4), (w.shape[1], 1, 1))
        for b in used:
            m[b] = fit_rigid(vertices, target, w[:, b])
        total += float(np.linalg.norm(linear_blend_skinning(vertices, w, m[None])[0] - target, axis=1).mean())
    return total / max(len(targets), 1)
