"""Skeletons built on the mesh's own volume: the curve skeleton of the voxelised interior alone
("curve"), or with joints at the learned keypoints ("fused"), mirror symmetric in the plane found on
the rest surface (left / right chains only paired for names on a posed creature) and named from what
the chains are (rigcore.naming). The preset's [rig] section
(rigcore.presets.RigOptions) chooses; "chain" (the learned spanning tree) is built by
rigcore.build_skeleton directly and does not come here.

Frame: the mesh's own, with `up_axis` "Z" or "Y" naming its up direction (the bundle's up axis).
A y-up mesh is turned z up first (rigcore.frames) and the joints turned back, so both frames
give the same rig; the mirror plane is searched among vertical planes.

A rig must fit the bundle's limits (rigcore.bundle MAX_KEYPOINTS joints, MAX_BONES bones): a curve
skeleton with more joints is rebuilt coarser (`CurveSkeletonOptions.coarser`, on the same voxels)
up to COARSER_TRIES times, then refused with InputError, before any skinning runs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from keydiff3d_addon.rigcore import (
    Mirror,
    Naming,
    RigOptions,
    Skeleton,
    SkeletonError,
    build_skeleton,
)
from keydiff3d_addon.rigcore.bundle import MAX_BONES, MAX_KEYPOINTS
from keydiff3d_addon.rigcore.frames import FrameError, rotation_to_z_up

from ..errors import InputError
from ..progress import Progress
from .curve_skeleton import (
    CurveSkeleton,
    CurveSkeletonOptions,
    VoxelGrid,
    medial_tree,
    place_joints,
)
from .symmetry import (
    MirrorPlane,
    mirror_skeleton,
    pair_posed_sides,
    surface_mirror,
    torso_mirror,
)

SYMMETRIC = 0.01  # a surface whose asymmetry (rigging.symmetry) is at most this fraction of size is mirrored
POSED = (
    0.02  # up to this asymmetry of the torso (a posed bilateral creature) left / right chains are paired for names only
)
TORSO = 2.0  # the torso: faces within this x the root joint's thickness
COARSER_TRIES = 4  # rebuilds with coarser settings before a skeleton over the bundle's joint limit is refused
# [rig] keys volume_skeleton reads itself; every other RigOptions field is a CurveSkeletonOptions field
RIG_ONLY_FIELDS = ("method", "mirror", "keep_anchored_spurs")


@dataclass
class VolumeRig:
    """The skeleton and how it was made: the curve skeleton (z up; joints = skeleton.keypoints in
    the mesh's own frame), the mirror plane found on the surface (z up) and what it did: symmetry
    "mirrored" (asymmetry <= SYMMETRIC: the two sides made mirror images), "paired" (a posed
    creature whose torso's plane has asymmetry <= POSED; that plane: left / right chains paired for
    names, positions kept) or "none"."""

    skeleton: Skeleton
    curve: CurveSkeleton
    plane: MirrorPlane
    symmetry: str


def curve_options(rig: RigOptions) -> CurveSkeletonOptions:
    """The curve-skeleton settings of a preset's [rig] section: all its fields but RIG_ONLY_FIELDS
    (one without a CurveSkeletonOptions field is a TypeError, never dropped)."""
    return CurveSkeletonOptions(**{f.name: getattr(rig, f.name) for f in fields(rig) if f.name not in RIG_ONLY_FIELDS})


def volume_skeleton(
    vertices: np.ndarray,
    faces: np.ndarray,
    rig: RigOptions,
    *,
    keypoints: np.ndarray | None = None,
    naming: Naming | None = None,
    up_axis: str = "Z",
    root_bone: bool = False,
    ground: float | None = None,
    options: CurveSkeletonOptions | None = None,
    grid: VoxelGrid | None = None,
    plane: MirrorPlane | None = None,
    progress: Progress | None = None,
) -> VolumeRig:
    """A skeleton on the mesh's curve skeleton (rig.method "curve" or "fused"; "fused" needs
    `keypoints` (N, 3), which become joints where they snap onto the curves). `options` overrides
    the curve settings taken from `rig`; `grid` and `plane` reuse a voxelisation and a mirror plane
    of the same (z-up) mesh (a benchmark comparing settings). Bones: one per curve-skeleton edge,
    hung from its thickest branch point; no leaf bones (the ends already reach the surface).
    A skeleton over the bundle's limits is rebuilt coarser or refused (InputError; module docstring)."""
    progress = progress or Progress()
    if rig.method not in ("curve", "fused"):
        raise InputError(f"volume_skeleton builds 'curve' or 'fused' rigs, not {rig.method!r}")
    if rig.method == "fused" and (keypoints is None or len(keypoints) == 0):
        raise InputError("a 'fused' rig needs the learned keypoints")
    try:
        rotation = rotation_to_z_up(up_axis)  # own -> z up
    except FrameError as error:
        raise InputError(str(error)) from None
    vertices = np.asarray(vertices, np.float64) @ rotation.T
    keypoints = None if keypoints is None else np.asarray(keypoints, np.float64) @ rotation.T
    options = options or curve_options(rig)
    anchors = keypoints if rig.method == "fused" else None
    protect = anchors if rig.keep_anchored_spurs else None
    progress.update(0.0, "curve skeleton", stage="skeleton")
    tree = medial_tree(vertices, faces, options, grid, protect, progress.span(0.0, 0.5))
    progress.update(0.5, "mirror plane")
    plane = plane or surface_mirror(vertices, faces)
    coarsened = 0
    while True:
        curve, symmetry, joint_plane = _symmetric_joints(tree, options, anchors, plane, rig.mirror, vertices, faces)
        if len(curve.joints) <= MAX_KEYPOINTS:
            break
        if coarsened == COARSER_TRIES:
            raise InputError(
                f"the mesh's curve skeleton has {len(curve.joints)} joints even at the coarsest settings, over the "
                f"bundle's limit of {MAX_KEYPOINTS}; is it a creature's closed surface? Else use a preset with "
                "[rig] method = 'chain'"
            )
        rebuild = (0.5 + 0.05 * coarsened, 0.55 + 0.05 * coarsened)  # COARSER_TRIES (4) of them: 0.5 - 0.7
        progress.update(rebuild[0], f"{len(curve.joints)} joints: coarser")
        options, coarsened = options.coarser(), coarsened + 1
        tree = medial_tree(vertices, faces, options, tree.grid, protect, progress.span(*rebuild))
    plane = joint_plane
    edges = curve.edges
    adjacency = np.zeros((len(curve.joints),) * 2)
    adjacency[edges[:, 0], edges[:, 1]] = adjacency[edges[:, 1], edges[:, 0]] = 1.0
    mirror = (
        Mirror(plane.normal, plane.point, curve.mirror, curve.side, plane.asymmetry) if symmetry != "none" else None
    )
    progress.update(0.8, "bones")
    try:
        skeleton = build_skeleton(
            curve.joints @ rotation,
            adjacency,
            root=0,
            volume_weight=0.0,
            length_weight=0.0,
            naming=naming,
            mirror=mirror,
            thickness=curve.radius,
            up_axis=up_axis,
            root_bone=root_bone,
            ground=ground,
        )
    except SkeletonError as error:
        raise InputError(f"the skeleton could not be built: {error}") from None
    if len(skeleton.bones) > MAX_BONES:
        raise InputError(f"the skeleton has {len(skeleton.bones)} bones, over the bundle's limit of {MAX_BONES}")
    if coarsened:
        skeleton.repairs.append(
            f"the curve skeleton was over the bundle's limit of {MAX_KEYPOINTS} joints; rebuilt {coarsened}x coarser "
            f"(min_branch {options.min_branch:g}, bend_tolerance {options.bend_tolerance:g}, "
            f"max_bone {options.max_bone:g})"
        )
    progress.update(1.0, "skeleton built")
    return VolumeRig(skeleton, curve, plane, symmetry)


def _symmetric_joints(
    tree, options: CurveSkeletonOptions, anchors, plane: MirrorPlane, mirror: bool, vertices, faces
) -> tuple[CurveSkeleton, str, MirrorPlane]:
    """Joints on the medial tree, made mirror images ("mirrored") or paired for names ("paired", in
    the torso's plane) when the shape allows; returns (joints, symmetry, the plane used)."""
    curve = place_joints(tree, options, anchors)
    if mirror and plane.asymmetry <= SYMMETRIC:  # mirror images where they match, names for the rest
        return pair_posed_sides(mirror_skeleton(curve, plane), plane), "mirrored", plane
    if mirror:  # posed: the torso (twice its thickness around the root joint) keeps the symmetry
        torso = torso_mirror(vertices, faces, curve.joints[0], TORSO * float(curve.radius[0]))
        if torso is not None and torso.asymmetry <= POSED:
            return pair_posed_sides(curve, torso), "paired", torso
    return curve, "none", plane
