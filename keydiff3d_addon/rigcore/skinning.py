"""Skinning weights from bone segments: bone heat or a Gaussian of the vertex-segment distance,
top-k, normalised.

Numpy + stdlib only (runs inside Blender's Python). Vertices (V, 3) and bones share one frame.

Methods:
- "heat" (`DEFAULT_METHOD`, the product's default; needs the mesh's triangles): bone heat as
  Blender's automatic weights compute it (`heat.py`: surface heat diffusion from the bones each
  vertex sees), robust where Blender's fails
  (mesh pieces that see no bone, loose vertices, placeholder bone tails), so no vertex is left
  unweighted. Per bone, solutions under 0.025 are dropped and 0.025-0.05 ramped to 0-0.05 (as
  Blender does); then each vertex keeps its k largest weights, renormalised (plain truncation, as
  Blender's FBX and glTF exporters limit influences). A vertex whose weights all fell under the
  threshold keeps its strongest bone.
- "gaussian" (the function's default, for point clouds): w_vb = exp(-d(v, segment_b)^2 / (2 sigma^2)),
  sigma = `sigma` x the mesh's largest bounding-box side (or absolute with `relative=False`).
- "gaussian_scaled": the same kernel on a per-bone scaled distance d / r_b, where r_b is bone b's
  local thickness (median distance to it of the vertices it is nearest to), so a thick body and a
  thin limb each blend over the same fraction of their own width and a thin limb does not pull the
  body's surface towards it. Optionally (`smooth_iterations` > 0, faces given) the weight field is
  then diffused over the surface graph, which evens out noisy reconstructed surfaces; on the
  benchmark's clean meshes smoothing did not pay (docs/bench/rigging.md), so presets leave it off.
Both Gaussian methods end with continuous top-k truncation: the (k+1)-th largest weight is subtracted from the top k,
so a bone's weight reaches zero smoothly as it leaves the top k; rows are normalised and every vertex
keeps at least one influence. Weights are computed relative to each row's maximum (a log-space
shift), so vertices far from every bone still get their nearest bone instead of underflowing to 0.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np

from .heat import heat_solution, heat_sources
from .rays import GridHitFinder
from .skeleton import Bone, Skeleton

METHODS = ("heat", "gaussian", "gaussian_scaled")
DEFAULT_METHOD = "heat"  # the product's default (presets, CLI, service, add-on); the function's own default
# stays "gaussian", which needs no triangles
MAX_INFLUENCES = 4
HEAT_DROP, HEAT_RAMP = 0.025, 0.05  # Blender's heat_limit_weight


@dataclass(frozen=True)
class MethodParameter:
    """One tunable of a skinning method, as data for user interfaces (the add-on's panel)."""

    name: str
    default: float | int | bool
    description: str
    minimum: float | None = None
    maximum: float | None = None


METHOD_PARAMETERS: dict[str, tuple[MethodParameter, ...]] = {
    "heat": (
        MethodParameter(
            "placeholder_tails",
            True,
            "Skin bones whose tails stop short of their children (glTF and FBX imports) as segments to their children",
        ),
    ),
    "gaussian": (
        MethodParameter("sigma", 0.08, "Gaussian width as a fraction of the mesh's largest side", 1e-4, 1.0),
        MethodParameter("relative", True, "Sigma is a fraction of the mesh's largest side (else in scene units)"),
    ),
    "gaussian_scaled": (
        MethodParameter("sharpness", 0.2, "Kernel width on distances scaled by each bone's thickness", 1e-3, 2.0),
        MethodParameter("smooth_iterations", 0, "Diffusion steps of the weights over the surface", 0, 100),
        MethodParameter("smooth_step", 0.5, "Weight of the neighbours' mean in each diffusion step", 1e-3, 1.0),
    ),
}


# every method parameter's default, by name (one source: compute_skin_weights, the presets, the add-on)
PARAMETER_DEFAULTS: dict[str, float | int | bool] = {
    parameter.name: parameter.default for parameters in METHOD_PARAMETERS.values() for parameter in parameters
}


def method_parameter(method: str, name: str) -> MethodParameter:
    """The description of one parameter of one method (KeyError when the method has no such one)."""
    return next(p for p in METHOD_PARAMETERS[method] if p.name == name)


# every bounded parameter's [minimum, maximum], by name: the one range compute_skin_weights, the
# presets, the bundle reader and the add-on's fields enforce
PARAMETER_RANGES: dict[str, tuple[float, float]] = {
    parameter.name: (parameter.minimum, parameter.maximum)
    for parameters in METHOD_PARAMETERS.values()
    for parameter in parameters
    if parameter.minimum is not None and parameter.maximum is not None
}


def parameter_problem(name: str, value, *, relative: bool = True) -> str | None:
    """Why `value` cannot be parameter `name` (a phrase such as "between 0.001 and 1"), or None.
    A bounded parameter lies in its range (a whole number for integer ones); an absolute sigma
    (`relative=False`, in scene units) only has to be positive."""
    if name not in PARAMETER_RANGES:
        return None
    kind = numbers.Integral if isinstance(PARAMETER_DEFAULTS[name], int) else numbers.Real
    number = isinstance(value, kind) and not isinstance(value, bool)
    if name == "sigma" and not relative:
        return None if number and value > 0 else "positive"
    low, high = PARAMETER_RANGES[name]
    if number and low <= value <= high:
        return None
    return f"{'a whole number ' if kind is numbers.Integral else ''}between {low:g} and {high:g}"


class SkinningError(ValueError):
    """Inputs that cannot be skinned (empty mesh, no deform bones, bad parameters)."""


@dataclass
class SkinWeights:
    """indices (V, k) int32 into bone_names, weights (V, k) float32 with rows summing to 1 (unused
    slots have weight 0), bone_names = deform bones in column order; params = the method's
    parameters (enough to recompute), report = what the method had to repair (for provenance)."""

    indices: np.ndarray
    weights: np.ndarray
    bone_names: list[str]
    method: str = "gaussian"
    params: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])

    def dense(self, num_bones: int | None = None) -> np.ndarray:
        """(V, B) float32 weight matrix."""
        num_bones = len(self.bone_names) if num_bones is None else num_bones
        out = np.zeros((len(self.indices), num_bones), np.float32)
        rows = np.repeat(np.arange(len(self.indices)), self.k)
        np.add.at(out, (rows, self.indices.reshape(-1)), self.weights.reshape(-1))
        return out

    @classmethod
    def from_dense(cls, dense, bone_names: list[str], k: int = MAX_INFLUENCES, **meta) -> "SkinWeights":
        """Keep each row's k largest weights (plain truncation) and renormalise."""
        indices, weights = top_k(np.asarray(dense, np.float64), k, continuous=False)
        return cls(indices, weights, list(bone_names), **meta)


def segment_distances(vertices, heads, tails, dtype=np.float64) -> np.ndarray:
    """(V, B) Euclidean distance from each vertex to each bone segment [head, tail], in `dtype`.
    Computed about the vertices' mean with matrix products, so float32 stays accurate for meshes
    far from their origin."""
    v = np.asarray(vertices, np.float64)
    centre = v.mean(0) if len(v) else np.zeros(3)
    v = (v - centre).astype(dtype)
    h = (np.asarray(heads, np.float64) - centre).astype(dtype)
    e = (np.asarray(tails, np.float64) - centre).astype(dtype) - h
    ee = np.maximum((e * e).sum(1), np.finfo(dtype).tiny)
    vh = v @ e.T - (h * e).sum(1)  # (v - h) . e
    t = np.clip(vh / ee, 0.0, 1.0)
    d2 = (v * v).sum(1)[:, None] - 2.0 * (v @ h.T) + (h * h).sum(1)  # |v - h|^2
    d2 -= t * (2.0 * vh - t * ee)
    return np.sqrt(np.maximum(d2, 0.0, out=d2), out=d2)


def top_k(weights: np.ndarray, k: int, continuous: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Rows of non-negative weights (V, B) -> (indices (V, k) int32, weights (V, k) float32).

    continuous: subtract the (k+1)-th largest value first (zero-crossing truncation). Rows whose
    truncated weights are all zero (ties) keep their untruncated top k. Slots beyond B get weight 0.
    """
    w = np.array(weights, np.float32)  # a copy: picked entries are knocked out below
    num_v, num_b = w.shape
    kk = min(k, num_b)
    picks = min(kk + 1, num_b)
    rows = np.arange(num_v)
    idx = np.empty((num_v, picks), np.int64)
    vals = np.empty((num_v, picks), np.float32)
    for j in range(picks):  # k+1 argmax passes beat argpartition + sort for k <= 4
        idx[:, j] = w.argmax(1)
        vals[:, j] = w[rows, idx[:, j]]
        w[rows, idx[:, j]] = -np.inf
    top = vals[:, :kk].astype(np.float64)
    if continuous and picks > kk:
        cut = np.clip(top - vals[:, kk : kk + 1], 0.0, None)
        top = np.where((cut.sum(1) <= 0)[:, None], top, cut)
    total = top.sum(1, keepdims=True)
    nearest_only = total[:, 0] <= 0
    top[nearest_only, 0], total[nearest_only] = 1.0, 1.0
    out_i = np.zeros((num_v, k), np.int32)
    out_w = np.zeros((num_v, k), np.float32)
    out_i[:, :kk], out_w[:, :kk] = idx[:, :kk], top / total
    out_i[:, kk:] = idx[:, :1]
    return out_i, out_w


def _bones(skeleton_or_bones) -> list[Bone]:
    bones = skeleton_or_bones.bones if isinstance(skeleton_or_bones, Skeleton) else list(skeleton_or_bones)
    return [b for b in bones if b.deform]


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(n, start + size)


def compute_skin_weights(
    vertices,
    skeleton_or_bones,
    *,
    sigma: float = PARAMETER_DEFAULTS["sigma"],
    k: int = MAX_INFLUENCES,
    method: str = "gaussian",
    faces=None,
    relative: bool = PARAMETER_DEFAULTS["relative"],
    sharpness: float = PARAMETER_DEFAULTS["sharpness"],
    smooth_iterations: int = PARAMETER_DEFAULTS["smooth_iterations"],
    smooth_step: float = PARAMETER_DEFAULTS["smooth_step"],
    chunk: int = 8192,
    placeholder_tails: bool = PARAMETER_DEFAULTS["placeholder_tails"],
    hit_finder=None,
    linear_solver=None,
    progress=None,
) -> SkinWeights:
    """Skin `vertices` (V, 3) to the deform bones of a Skeleton (or a list of Bones).

    sigma: Gaussian width ("gaussian"), a fraction of the largest bbox side when `relative`.
    sharpness: width of the kernel on thickness-scaled distances ("gaussian_scaled", unitless).
    faces: (F, 3) triangles; required by "heat"; "gaussian_scaled" diffuses weights over their
        edges when given and `smooth_iterations` > 0.
    placeholder_tails: "heat" skins placeholder bones as segments to their children (`heat_sources`).
    hit_finder, linear_solver: faster ray and sparse-solver back ends for "heat" (see `rays.py`,
        `sparse.py`; the backend passes embree and scipy, the add-on runs the numpy defaults).
    progress: anything with `update(fraction, message)` (keydiff3d.progress.Progress); cancellable.
    """
    v = np.asarray(vertices, np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise SkinningError("the mesh has no vertices to skin")
    if not np.isfinite(v).all():
        raise SkinningError("mesh vertices contain NaN or infinite values")
    bones = _bones(skeleton_or_bones)
    if not bones:
        raise SkinningError("the skeleton has no deform bones to skin to")
    if method not in METHODS:
        raise SkinningError(f"unknown skinning method {method!r}; choose one of {', '.join(METHODS)}")
    if not 1 <= k <= MAX_INFLUENCES:
        raise SkinningError(f"k must be between 1 and {MAX_INFLUENCES}, got {k}")
    given = {"sigma": sigma, "sharpness": sharpness, "smooth_iterations": smooth_iterations, "smooth_step": smooth_step}
    for name, value in given.items():
        if (problem := parameter_problem(name, value, relative=relative)) is not None:
            raise SkinningError(f"the skinning parameter {name} must be {problem}, got {value!r}")
    heads = np.stack([b.head for b in bones]).astype(np.float64)
    tails = np.stack([b.tail for b in bones]).astype(np.float64)
    names = [b.name for b in bones]
    extent = float(np.ptp(v, axis=0).max()) or 1.0

    if method == "heat":
        backends = (hit_finder, linear_solver)
        return _heat_weights(v, faces, skeleton_or_bones, names, k, placeholder_tails, backends, progress)

    if method == "gaussian":
        width = sigma * extent if relative else sigma
        params = {"sigma": sigma, "relative": relative, "sigma_world": width}
        indices = np.zeros((len(v), k), np.int32)
        weights = np.zeros((len(v), k), np.float32)
        for start, end in _chunks(len(v), chunk):
            d2 = segment_distances(v[start:end], heads, tails, np.float32) ** 2
            logits = (d2.min(1, keepdims=True) - d2) * np.float32(0.5 / (width * width))
            indices[start:end], weights[start:end] = top_k(np.exp(logits), k)
            if progress is not None:
                progress.update(end / len(v), "skinning")
        return SkinWeights(indices, weights, names, method, params)

    # gaussian_scaled: distances for all vertices first (needed for the per-bone thickness)
    d = np.empty((len(v), len(bones)), np.float32)
    for start, end in _chunks(len(v), chunk):
        d[start:end] = segment_distances(v[start:end], heads, tails, np.float32)
        if progress is not None:
            progress.update(0.4 * end / len(v), "skinning: distances")
    nearest = d.argmin(1)
    d_min = d[np.arange(len(v)), nearest]
    radius = bone_thickness(d_min, nearest, len(bones), floor=0.01 * extent)
    field_ = np.empty_like(d)
    for start, end in _chunks(len(v), chunk):
        e2 = (d[start:end] / radius) ** 2
        field_[start:end] = np.exp((e2.min(1, keepdims=True) - e2) * np.float32(0.5 / (sharpness * sharpness)))
    if progress is not None:
        progress.update(0.6, "skinning: surface smoothing")
    if faces is not None and smooth_iterations > 0:
        field_ = smooth_over_surface(field_, faces, smooth_iterations, smooth_step, progress)
    indices, weights = top_k(field_, k)
    if progress is not None:
        progress.update(1.0, "skinning")
    params = {
        "sharpness": sharpness,
        "smooth_iterations": smooth_iterations if faces is not None else 0,
        "smooth_step": smooth_step,
    }
    return SkinWeights(indices, weights, names, method, params)


def _heat_weights(v, faces, skeleton_or_bones, names, k, placeholder_tails, backends, progress) -> SkinWeights:
    hit_finder, linear_solver = backends
    if faces is None:
        raise SkinningError("the heat method needs the mesh's triangles (faces); use gaussian for a point cloud")
    f = np.asarray(faces)
    if f.ndim != 2 or f.shape[1] != 3 or (f.size and (f.min() < 0 or f.max() >= len(v))):
        raise SkinningError("faces must be an F x 3 array of vertex indices of the mesh")
    all_bones = skeleton_or_bones.bones if isinstance(skeleton_or_bones, Skeleton) else list(skeleton_or_bones)
    # Files split vertices at every UV seam and hard edge (glTF always): heat must see one connected
    # surface there, or each side is solved alone and the seam tears when posed.
    welded, copy_of = weld_seams(v, f)
    f_welded = copy_of[f]  # the same triangles in the same order: a `hit_finder` built on `faces` still fits
    finder = hit_finder or GridHitFinder(welded, f_welded).hits
    sources = heat_sources(all_bones, welded, f_welded, finder, placeholder_tails)
    solution = heat_solution(
        welded, f_welded, sources, hit_finder=finder, linear_solver=linear_solver, progress=progress
    )
    per_bone = solution.values[copy_of] @ (sources.bone[:, None] == np.arange(len(names))).astype(np.float64)
    limited = heat_limit_weight(per_bone)
    empty = limited.max(1) <= 0
    limited[np.flatnonzero(empty), per_bone[empty].argmax(1)] = 1.0
    indices, weights = top_k(limited, k, continuous=False)
    report = {
        "unweighted_before_fallback": int(empty.sum()),
        "blind_pieces": solution.blind_pieces,
        "blind_vertices": solution.blind_vertices,
        "loose_vertices": solution.loose,
        "welded_vertices": int(len(v) - len(welded)),
        "unconstrained_vertices": int(solution.unconstrained.sum()),
        "notes": sources.notes,
    }
    return SkinWeights(indices, weights, names, "heat", {"placeholder_tails": bool(placeholder_tails)}, report)


def weld_seams(vertices: np.ndarray, faces: np.ndarray, tolerance: float = 1e-7) -> tuple[np.ndarray, np.ndarray]:
    """(welded (U, 3), copy_of (V,)): the copies a file made of one vertex along a seam become one
    again. Only vertices on open edges (edges of a single triangle) are merged, when they coincide
    within `tolerance` x the largest bbox side (per axis); separate closed shells that merely touch
    stay apart. Welded vertices keep the order of their first copy."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    n = len(v)
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), 1)
    edge_keys, uses = np.unique(edges[:, 0] * n + edges[:, 1], return_counts=True)  # one int per edge
    open_edges = edge_keys[uses == 1]
    seam = np.unique(np.concatenate([open_edges // n, open_edges % n]))
    label = np.arange(n)
    if len(seam) > 1:
        radius = tolerance * (float(np.ptp(v, axis=0).max()) or 1.0)
        label[seam] = seam[_near_groups(v[seam], radius)]
    first, copy_of = np.unique(label, return_inverse=True)
    return v[first], copy_of.reshape(-1)


NEAR_CANDIDATES = 64  # neighbours along the direction each point is compared with (`_near_groups`)


def _near_groups(points: np.ndarray, radius: float) -> np.ndarray:
    """(P,) for points (P, 3): the smallest index of each point's group, points within `radius` of
    each other on every axis grouped (transitively). Exact copies are merged first; the distinct
    positions are compared with their next `NEAR_CANDIDATES` neighbours in the order along a
    direction no mesh plane is likely to face (an axis-aligned wall would put all its points at one
    coordinate), so time and memory stay linear even where thousands of copies pile up."""
    order = np.lexsort(points.T[::-1])
    ordered = points[order]
    new_position = np.r_[True, (ordered[1:] != ordered[:-1]).any(1)]
    position = np.cumsum(new_position) - 1  # (P,) in sorted order: index of the distinct position
    distinct = ordered[new_position]
    first = order[new_position]  # the smallest index at each distinct position (lexsort is stable)
    direction = np.array([1.0, 2.0**0.5, 3.0**0.5]) / 6.0**0.5
    along = distinct @ direction
    by_along = np.argsort(along, kind="stable")
    along, ranked = along[by_along], distinct[by_along]
    reach = radius * float(np.abs(direction).sum())  # the largest gap along it of a pair within radius
    pairs = []
    for offset in range(1, min(NEAR_CANDIDATES, len(distinct) - 1) + 1):
        close = np.flatnonzero(along[offset:] - along[:-offset] <= reach)
        if not len(close):
            break
        near = close[(np.abs(ranked[close + offset] - ranked[close]) <= radius).all(1)]
        pairs.append(np.column_stack([by_along[near], by_along[near + offset]]))
    # connected components of the pairs: hook the larger root under the smaller, jump pointers to
    # the roots, repeat (a few rounds even for a long chain of near copies)
    root = np.arange(len(distinct))
    if pairs:
        a, b = np.concatenate(pairs).T
        while True:
            low, high = np.minimum(root[a], root[b]), np.maximum(root[a], root[b])
            if not (low != high).any():
                break
            np.minimum.at(root, high, low)
            while not np.array_equal(root[root], root):
                root = root[root]
    smallest = np.full(len(distinct), len(points))
    np.minimum.at(smallest, root, first)
    label = smallest[root]  # each group's smallest original index
    out = np.empty(len(points), np.int64)
    out[order] = label[position]
    return out


def heat_limit_weight(weight: np.ndarray) -> np.ndarray:
    """Blender's cut of small heat weights: under HEAT_DROP -> 0, HEAT_DROP..HEAT_RAMP -> 0..HEAT_RAMP."""
    ramp = (weight - HEAT_DROP) / (HEAT_RAMP - HEAT_DROP) * HEAT_RAMP
    return np.where(weight < HEAT_DROP, 0.0, np.where(weight < HEAT_RAMP, ramp, weight))


def bone_thickness(d_min: np.ndarray, nearest: np.ndarray, num_bones: int, floor: float) -> np.ndarray:
    """(B,) median distance to bone b of the vertices nearest to it; bones nearest to no vertex take
    the median over all vertices. Floored at `floor` (a bone running along the surface)."""
    overall = float(np.median(d_min))
    radius = np.full(num_bones, overall, np.float64)
    order = np.argsort(nearest, kind="stable")
    bounds = np.searchsorted(nearest[order], np.arange(num_bones + 1))
    for b in range(num_bones):
        if bounds[b + 1] > bounds[b]:
            radius[b] = float(np.median(d_min[order[bounds[b] : bounds[b + 1]]]))
    return np.maximum(radius, floor).astype(np.float32)


def mesh_edges(faces, num_vertices: int) -> np.ndarray:
    """(E, 2) unique undirected edges of a triangle mesh."""
    f = np.asarray(faces, np.int64)
    if f.size and (f.min() < 0 or f.max() >= num_vertices):
        raise SkinningError("faces index vertices that do not exist")
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    e.sort(1)
    return np.unique(e, axis=0)


def smooth_over_surface(values: np.ndarray, faces, iterations: int, step: float = 0.5, progress=None) -> np.ndarray:
    """Jacobi diffusion of per-vertex rows (V, C) over the mesh's edges:
    x <- (1 - step) x + step * mean(neighbours). Isolated vertices keep their values."""
    x = np.asarray(values, np.float32).copy()
    edges = mesh_edges(faces, len(x))
    if len(edges) == 0:
        return x
    a, b = edges[:, 0], edges[:, 1]
    degree = np.bincount(a, minlength=len(x)) + np.bincount(b, minlength=len(x))
    inv = np.where(degree > 0, 1.0 / np.maximum(degree, 1), 0.0).astype(np.float32)[:, None]
    keep = np.where(degree > 0, 1.0 - step, 1.0).astype(np.float32)[:, None]
    for it in range(iterations):
        total = np.zeros_like(x)
        _scatter_add(total, a, x[b])
        _scatter_add(total, b, x[a])
        x = keep * x + step * inv * total
        if progress is not None:
            progress.update(0.6 + 0.4 * (it + 1) / iterations, "skinning: surface smoothing")
    return x


def _scatter_add(out: np.ndarray, index: np.ndarray, rows: np.ndarray) -> None:
    """out[index[i]] += rows[i], column by column with bincount (far faster than np.add.at)."""
    for c in range(out.shape[1]):
        out[:, c] += np.bincount(index, weights=rows[:, c], minlength=len(out)).astype(out.dtype)
