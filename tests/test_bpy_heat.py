"""rigcore's bone heat against Blender's own automatic weights (the bpy module), and inside Blender
through the add-on's Recompute Weights."""

from __future__ import annotations

import numpy as np
import pytest
from bpy_fixtures import bpy
from test_rigging_heat import BONES_Z, chain, combine, sphere, tube

from keydiff3d.evaluation.bone_heat import blender_bone_heat
from keydiff3d_addon.rigcore import Bone, compute_skin_weights

pytestmark = pytest.mark.bpy


def _top4(dense: np.ndarray) -> np.ndarray:
    """Blender keeps every influence; keep the 4 largest, renormalised, as exporters do."""
    out = dense.copy()
    np.put_along_axis(out, np.argsort(-out, 1)[:, 4:], 0.0, 1)
    return out / np.maximum(out.sum(1, keepdims=True), 1e-12)


def _blender(v, f, bones):
    names = [b.name for b in bones]
    parents = [names.index(b.parent) if b.parent else -1 for b in bones]
    return blender_bone_heat(
        v, f, [b.head for b in bones], [b.tail for b in bones], parents, deform=[b.deform for b in bones], names=names
    )


def test_heat_equals_blender_on_a_bent_limb():
    upper = tube(length=1.5, rings=16)
    lower_v, lower_f = tube(length=1.2, rings=13, radius=0.25)
    lower_v = lower_v[:, [2, 1, 0]] * [1, 1, 1] + [0.1, 0, 1.35]  # along x, overlapping the upper's end
    v, f = combine(upper, (lower_v, lower_f[:, [0, 2, 1]]))  # axes swapped: flip to keep normals outward
    skeleton = chain([[0, 0, 0.1], [0, 0, 0.8], [0.0, 0, 1.4], [0.8, 0, 1.4], [1.2, 0, 1.4]])
    bones = skeleton.bones
    heat = _blender(v, f, bones)
    ours = compute_skin_weights(v, bones, faces=f, method="heat", placeholder_tails=False)
    assert heat.unweighted == 0
    np.testing.assert_allclose(ours.dense(), _top4(heat.weights), atol=1e-5)


@pytest.mark.parametrize("name", ["Cat.glb", "Shark.glb"])
def test_heat_equals_blender_on_artist_meshes(name):
    from keydiff3d.evaluation.rigged_assets import load_rigged_asset
    from keydiff3d.paths import RIGGED_ASSETS_DIR

    asset = load_rigged_asset(RIGGED_ASSETS_DIR / name, max_frames_per_clip=1)
    names = asset.bone_names
    bones = []
    for i, name in enumerate(names):
        parent = names[asset.parents[i]] if asset.parents[i] >= 0 else None
        bones.append(Bone(name, asset.heads[i], asset.tails[i], parent, i, bool(asset.deforming[i])))
    heat = _blender(asset.vertices, asset.faces, bones)
    ours = compute_skin_weights(asset.vertices, bones, faces=asset.faces, method="heat", placeholder_tails=False)
    np.testing.assert_allclose(ours.dense(), _top4(heat.weights[:, asset.deforming]), atol=1e-5)


def test_blender_leaves_an_eye_shell_unweighted_and_we_do_not():
    body = tube()
    eye = sphere([0.39, 0.0, 2.6], 0.08)
    v, f = combine(body, eye)
    bones = chain(BONES_Z).bones
    heat = _blender(v, f, bones)
    assert heat.unweighted >= len(eye[0])  # "failed to find solution": the eye shell gets nothing
    ours = compute_skin_weights(v, bones, faces=f, method="heat")
    assert (ours.dense().sum(1) > 0.999).all()


def test_recompute_weights_runs_heat_inside_blender(tmp_path):
    """The add-on's Recompute Weights runs the same heat method in Blender's Python (numpy only)."""
    from bpy_fixtures import make_chain_bundle

    from keydiff3d_addon.importer import import_bundle
    from keydiff3d_addon.weights import mesh_arrays, recompute_weights, rest_bones

    bpy.ops.wm.read_factory_settings(use_empty=True)
    rig = import_bundle(make_chain_bundle(tmp_path / "bundle"))
    skin = recompute_weights(bpy.context, rig.mesh, k=4, method="heat")
    to_armature = np.linalg.inv(np.array(rig.armature.matrix_world, np.float64))
    vertices, triangles = mesh_arrays(rig.mesh, to_armature)
    expected = compute_skin_weights(vertices, rest_bones(rig.armature), faces=triangles, method="heat")
    groups = {g.name: g.index for g in rig.mesh.vertex_groups}
    dense = np.zeros((len(vertices), len(skin.bone_names)))
    for vertex in rig.mesh.data.vertices:
        for g in vertex.groups:
            name = rig.mesh.vertex_groups[g.group].name
            if name in skin.bone_names:
                dense[vertex.index, skin.bone_names.index(name)] = g.weight
    assert set(skin.bone_names) <= set(groups)
    np.testing.assert_allclose(dense, expected.dense(), atol=1e-5)
    assert skin.method == "heat"
