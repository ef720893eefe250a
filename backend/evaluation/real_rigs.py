"""The rigs `keydiff3d bench skeleton` compares on artist-rigged creatures, built the way users get
them, and their scores (evaluation.rig_quality).

Rigs of one creature (an evaluation.rigged_assets.RiggedAsset, world frame, z up):
- "predicted chain": the `rig-mesh` path without keypoints: orbit views of the rest mesh (with the
  file's colours) -> the keypoint model -> the learned spanning tree with the category preset;
- volume rigs (rigging.volume_rig): the mesh's curve skeleton, alone or with the predicted
  keypoints as joints, refined or as the plain geometric baseline;
- "project on artist joints": the preset's rig builder given the artist's joints and links as
  keypoints and adjacency (what the project makes of perfect keypoints);
- "artist": the artist's own bones and weights.
Every built rig is skinned with Blender's bone heat and with the preset's own skinning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import rig_quality
from .rig_quality import ArtistSkeleton, Bones

PRESET_OF_CATEGORY = {"quadruped": "quadruped", "biped": "biped", "bird": "bird"}  # any other: generic
SKINNINGS = ("bone heat", "preset")


@dataclass
class AssetContext:
    """What every rig of one creature is measured against."""

    asset: object  # RiggedAsset
    path: Path
    preset: object  # rigcore CategoryPreset
    size: float
    inside: object  # points (M, 3) -> (M,) bool
    surface: np.ndarray
    plane: object  # rigging.symmetry.MirrorPlane
    reference: ArtistSkeleton
    bilateral: bool


def asset_context(asset, path: Path, preset_name: str | None = None) -> AssetContext:
    from keydiff3d_addon.rigcore import load_category_preset

    from ..rigging.symmetry import surface_mirror, surface_samples

    preset = load_category_preset(preset_name or PRESET_OF_CATEGORY.get(asset.category, "generic"))
    size = float(np.ptp(asset.vertices, axis=0).max())
    reference = rig_quality.artist_skeleton(asset)
    plane = surface_mirror(asset.vertices, asset.faces)
    bilateral = rig_quality.bilateral_pairs(reference, plane, size) > 0
    return AssetContext(asset, Path(path), preset, size, rig_quality.mesh_inside(asset.vertices, asset.faces),
                        surface_samples(asset.vertices, asset.faces), plane, reference, bilateral)  # fmt: skip


def render_mesh(ctx: AssetContext):
    """The rest mesh as the add-on sends it: welded vertices, faces, the file's colours (nearest vertex)."""
    from scipy.spatial import cKDTree

    from ..mesh_io import load_mesh
    from ..synthetic.renderer import RenderMesh

    own = load_mesh(ctx.path)
    colours = own.colors[cKDTree(own.vertices).query(ctx.asset.vertices)[1]] if own.has_own_colors else None
    return RenderMesh.from_arrays(ctx.asset.vertices, ctx.asset.faces, colours)


def predicted_keypoints(ctx: AssetContext, checkpoint=None) -> tuple[np.ndarray, np.ndarray]:
    """(keypoints (N, 3), adjacency (N, N)) of the keypoint model on the rest mesh's orbit views,
    keypoints outside the mesh moved just inside it (as rig-mesh does)."""
    from ..pipeline.mesh import predict_keypoints
    from ..rigging.mesh_tools import inside_test, project_inside

    keypoints, adjacency, _ = predict_keypoints(render_mesh(ctx), checkpoint=checkpoint, up_axis="Z")
    keypoints, _ = project_inside(keypoints, ctx.asset.vertices, ctx.asset.faces, inside_test(ctx.asset.vertices, ctx.asset.faces))
    return keypoints, adjacency


def chain_skeleton(ctx: AssetContext, keypoints: np.ndarray, adjacency: np.ndarray, volume_weight: float | None = None):
    """The learned spanning tree with the preset's settings (rig-mesh's rig stage)."""
    from keydiff3d_addon.rigcore import build_skeleton

    from ..rigging.mesh_tools import inside_test

    kwargs = ctx.preset.skeleton.kwargs()
    if volume_weight is not None:
        kwargs["volume_weight"] = volume_weight
    return build_skeleton(keypoints, adjacency, inside=inside_test(ctx.asset.vertices, ctx.asset.faces), naming=ctx.preset.naming,
                          ground=float(ctx.asset.vertices[:, 2].min()), **kwargs)  # fmt: skip


def artist_joint_skeleton(ctx: AssetContext):
    """The preset's rig builder on the artist's joints, with the artist's links as the adjacency
    (no volume penalty, so the given links are the tree)."""
    ref = ctx.reference
    adjacency = np.zeros((len(ref.joints),) * 2)
    adjacency[ref.edges[:, 0], ref.edges[:, 1]] = adjacency[ref.edges[:, 1], ref.edges[:, 0]] = 1.0
    return chain_skeleton(ctx, ref.joints, adjacency, volume_weight=0.0)


def volume_skeleton(ctx: AssetContext, rig_options, keypoints: np.ndarray | None = None, curve_options=None):
    from ..rigging.volume_rig import volume_skeleton as build

    return build(ctx.asset.vertices, ctx.asset.faces, rig_options, keypoints=keypoints, naming=ctx.preset.naming,
                 options=curve_options, ground=float(ctx.asset.vertices[:, 2].min())).skeleton  # fmt: skip


@dataclass
class RigUnderTest:
    """One rig of a creature: its deform bones and dense weights (V, B) per skinning."""

    label: str
    bones: Bones
    weights: dict[str, np.ndarray] = field(default_factory=dict)


def skinned(ctx: AssetContext, label: str, skeleton, skinnings=SKINNINGS) -> RigUnderTest:
    """A rigcore Skeleton's deform bones with Blender's bone heat and/or the preset's skinning."""
    from keydiff3d_addon.rigcore import compute_skin_weights

    from .bone_heat import blender_bone_heat

    bones = rig_quality.rig_bones(skeleton)
    rig = RigUnderTest(label, bones)
    v, f = ctx.asset.vertices, ctx.asset.faces
    if "bone heat" in skinnings:
        rig.weights["bone heat"] = blender_bone_heat(v, f, bones.heads, bones.tails, bones.parents, names=bones.names).weights
    if "preset" in skinnings:
        skin = compute_skin_weights(v, skeleton, faces=f, **ctx.preset.skinning.kwargs())
        column = {n: i for i, n in enumerate(skin.bone_names)}
        dense = skin.dense()
        rig.weights["preset"] = dense[:, [column[n] for n in bones.names]]
    return rig


def artist_rig(ctx: AssetContext, bone_heat: bool = True) -> RigUnderTest:
    """The artist's bones with the artist's weights ("artist"), and with bone heat."""
    from .bone_heat import blender_bone_heat

    ref = ctx.reference
    rig = RigUnderTest("artist", ref.bones, {"artist": ctx.asset.weights[:, ref.columns]})
    if bone_heat:
        b = ref.bones
        rig.weights["bone heat"] = blender_bone_heat(ctx.asset.vertices, ctx.asset.faces, b.heads, b.tails, b.parents).weights
    return rig


def score(ctx: AssetContext, rig: RigUnderTest, deformation: bool = True) -> dict[str, dict[str, float]]:
    """skinning -> metrics (structure, bones, names; deformation per skinning when asked)."""
    joints, edges = rig.bones.graph(1e-6 * ctx.size)
    common = {**rig_quality.structure_scores(joints, edges, ctx.reference, ctx.surface, ctx.size),
              **rig_quality.bone_scores(rig.bones, ctx.inside, ctx.size),
              **rig_quality.name_scores(rig.bones, ctx.plane, ctx.size)}  # fmt: skip
    out = {}
    for skinning, weights in rig.weights.items():
        out[skinning] = {**common, **(rig_quality.deformation_scores(ctx.asset, weights, rig.bones) if deformation else {})}
    return out
