"""The rigging stage: keypoints + adjacency + a mesh -> skeleton + skin weights -> RigBundle.

Thin glue over `keydiff3d_addon.rigcore` with the category preset's settings, plus the one thing the
pipeline knows and the rigging core does not: the object's silhouettes in every view, which give a
cheap "inside the object" test (the visual hull) for the spanning tree's volume penalty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, InputError
from ..geometry import project_points
from ..multiview.base import MultiViewResult
from ..progress import Progress
from keydiff3d_addon.rigcore import CategoryPreset, PresetError, RigBundle, SkeletonError, SkinningError, build_skeleton, compute_skin_weights, load_category_preset

Inside = Callable[[np.ndarray], np.ndarray]


@dataclass
class MeshArrays:
    """The mesh a rig is built on: vertices (V, 3) float32, faces (F, 3) int32, colors (V, 4) uint8 or None."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray | None = None


def load_preset(name: str) -> CategoryPreset:
    """A category preset by name; ConfigError (one sentence) when it is missing or malformed."""
    try:
        return load_category_preset(name)
    except PresetError as error:
        raise ConfigError(str(error)) from None


def silhouette_inside(views: MultiViewResult, tolerance: int = 1, threshold: float = 0.5) -> Inside:
    """points (M, 3) in the views' world frame -> (M,) bool: inside the foreground mask in all but
    `tolerance` views (a soft visual hull; one imperfect generated view must not cut a limb)."""
    P = views.cameras.P
    masks = views.masks > threshold
    V, H, W = masks.shape

    def inside(points: np.ndarray) -> np.ndarray:
        uv, depth = project_points(P, np.asarray(points, np.float64)[None])  # (V, M, 2), (V, M)
        col = np.floor(uv[..., 0]).astype(np.int64)
        row = np.floor(uv[..., 1]).astype(np.int64)
        valid = (depth > 0) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
        hits = np.zeros(valid.shape, bool)
        view_index = np.broadcast_to(np.arange(V)[:, None], valid.shape)
        hits[valid] = masks[view_index[valid], row[valid], col[valid]]
        return (~hits).sum(0) <= tolerance

    return inside


def inside_test_for(mesh: MeshArrays, views: MultiViewResult, keypoints: np.ndarray) -> tuple[np.ndarray, Inside, list[int]]:
    """(keypoints, inside test, indices of moved keypoints). A watertight mesh gives an exact inside
    test, and keypoints outside it are moved just inside (bones must run through the body); any other
    mesh uses the views' silhouettes and keeps the keypoints where the model put them."""
    from ..rigging.mesh_tools import inside_test, project_inside

    exact = inside_test(mesh.vertices, mesh.faces)
    if exact is None:
        return np.asarray(keypoints, np.float64), silhouette_inside(views), []
    moved_keypoints, moved = project_inside(keypoints, mesh.vertices, mesh.faces, exact)
    return moved_keypoints, exact, moved


def rig_mesh(
    mesh: MeshArrays,
    keypoints: np.ndarray,
    adjacency: np.ndarray,
    preset: CategoryPreset,
    views: MultiViewResult,
    *,
    progress: Progress | None = None,
    provenance: dict | None = None,
    views_entry: dict | None = None,
) -> RigBundle:
    """Skeleton (maximum spanning tree of `adjacency`) and skin weights for `mesh`. keypoints (N, 3),
    adjacency (N, N), mesh and `views` (their cameras) share one frame, z up. `views_entry` is
    rig.json's optional "views" section. Bad inputs raise InputError (one sentence)."""
    progress = progress or Progress()
    keypoints, inside, moved = inside_test_for(mesh, views, keypoints)
    progress.update(0.1, "inside test ready")
    try:
        skeleton = build_skeleton(keypoints, adjacency, inside=inside, naming=preset.naming, **preset.skeleton.kwargs())
        progress.update(0.2, "skeleton built")
        skin = compute_skin_weights(mesh.vertices, skeleton, faces=mesh.faces, progress=progress.span(0.2, 1.0), **preset.skinning.kwargs())
    except (SkeletonError, SkinningError) as error:
        raise InputError(f"the rig could not be built: {error}") from None
    return RigBundle(
        vertices=np.asarray(mesh.vertices, np.float32),
        faces=np.asarray(mesh.faces, np.int32),
        colors=mesh.colors,
        skeleton=skeleton,
        skin=skin,
        views=views_entry,
        provenance={"preset": preset.name, "keypoints_moved_inside": moved, **(provenance or {})},
    )
