"""The rigging stage: keypoints + adjacency + a mesh -> skeleton + skin weights -> RigBundle.

Thin glue over `keydiff3d_addon.rigcore` with the category preset's settings and the mesh's exact
inside test (generalised winding numbers, `rigging.mesh_tools`), which gives the spanning tree's
volume penalty, keeps tip bones inside the mesh and lets keypoints that fell outside the mesh be
moved just inside it. Skinning runs rigcore's method with the backend's embree and scipy back ends
(`rigging.heat_backends`). Every path that rigs a mesh (image, views, an existing mesh, `rig-mesh`)
ends here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from keydiff3d_addon.rigcore import (
    CategoryPreset,
    PresetError,
    RigBundle,
    SkeletonError,
    SkinningError,
    build_skeleton,
    compute_skin_weights,
    load_category_preset,
)

from .. import __version__
from ..errors import ConfigError, InputError
from ..geometry import project_points
from ..multiview.base import MultiViewResult
from ..progress import Progress

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


def rig_mesh(
    mesh: MeshArrays,
    keypoints: np.ndarray,
    adjacency: np.ndarray,
    preset: CategoryPreset,
    *,
    up_axis: str = "Z",
    progress: Progress | None = None,
    provenance: dict | None = None,
    views_entry: dict | None = None,
    given: bool = False,
    move_inside: bool = True,
) -> RigBundle:
    """Skeleton and skin weights for `mesh`: the maximum spanning tree of `adjacency` over the
    keypoints (preset [rig] method "chain"), or the mesh's curve skeleton alone ("curve") or with
    joints at the keypoints ("fused"; rigging.volume_rig). keypoints (N, 3), adjacency (N, N) and the
    mesh share one frame whose up axis is `up_axis` ("Z" or "Y"); the bundle keeps that frame.
    `views_entry` is rig.json's optional "views" section. The bundle's timings hold the seconds of
    "skeleton" and "skinning". Bad inputs raise InputError (one sentence).

    given: the keypoints and adjacency come from the user (`rig-mesh --keypoints`): their own
        skeleton, so always the "chain" method, and the adjacency names the edges, so the tree's
        priors only break near-ties (the preset's `prior_margin`).
    move_inside: keypoints outside the mesh are moved just inside it (recorded in the provenance);
        otherwise they stay and the skeleton's repairs note them."""
    from ..rigging.heat_backends import heat_accelerators
    from ..rigging.mesh_tools import inside_test, project_inside

    progress = progress or Progress()
    timings: dict[str, float] = {}
    start = time.perf_counter()
    chain = given or preset.rig.method == "chain"
    # for the few keypoints and tip samples; the curve skeleton has its own voxels
    fine_inside = inside_test(mesh.vertices, mesh.faces, cells=64) if chain or move_inside else None
    moved: list[int] = []
    if move_inside:
        keypoints, moved = project_inside(keypoints, mesh.vertices, mesh.faces, fine_inside)
    progress.update(0.1, "inside test ready")
    ground = float(np.asarray(mesh.vertices)[:, 2 if up_axis == "Z" else 1].min())
    margin = preset.skeleton.prior_margin if given else None
    try:
        if chain:
            skeleton = build_skeleton(
                keypoints,
                adjacency,
                inside=inside_test(mesh.vertices, mesh.faces),  # coarse: the volume penalty tests N^2 segments
                tip_inside=fine_inside,
                naming=preset.naming,
                up_axis=up_axis,
                ground=ground,
                prior_margin=margin,
                **preset.skeleton.kwargs(),
            )
        else:
            from ..rigging.volume_rig import volume_skeleton

            rig = volume_skeleton(
                mesh.vertices,
                mesh.faces,
                preset.rig,
                keypoints=keypoints,
                naming=preset.naming,
                up_axis=up_axis,
                root_bone=preset.skeleton.root_bone,
                ground=ground,
                progress=progress.span(0.1, 0.2),
            )
            skeleton = rig.skeleton
        if moved:
            skeleton.repairs.insert(0, f"keypoints {moved} were outside the mesh; moved just inside its surface")
        timings["skeleton"] = time.perf_counter() - start
        progress.update(0.2, "skeleton built")
        start = time.perf_counter()
        heat = preset.skinning.method == "heat"  # embree's scene and the solver serve heat skinning only
        skin = compute_skin_weights(
            mesh.vertices,
            skeleton,
            faces=mesh.faces,
            progress=progress.span(0.2, 1.0),
            **(heat_accelerators(mesh.vertices, mesh.faces) if heat else {}),
            **preset.skinning.kwargs(),
        )
        timings["skinning"] = time.perf_counter() - start
    except (SkeletonError, SkinningError) as error:
        raise InputError(f"the rig could not be built: {error}") from None
    if move_inside:
        why = "outside the mesh (winding number < 0.5): moved just inside its surface"
        why += " (--move-inside)" if given else ""
    else:
        why = "given keypoints stay where they are (no --move-inside); any outside the mesh are listed in repairs"
    moved_entry = {"indices": moved, "rule": why}
    return RigBundle(
        vertices=np.asarray(mesh.vertices, np.float32),
        faces=np.asarray(mesh.faces, np.int32),
        colors=mesh.colors,
        skeleton=skeleton,
        skin=skin,
        up_axis=up_axis,
        generator=f"keydiff3d {__version__}",
        views=views_entry,
        timings=timings,
        provenance={
            "preset": preset.name,
            "keypoints_moved_inside": moved_entry,
            "skeleton": skeleton.decisions,
            "skinning": skin.report,
            **(provenance or {}),
        },
    )
