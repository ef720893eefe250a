"""Rig bundle -> Blender scene with the add-on's importer, in the real bpy module."""

from __future__ import annotations

import json

import numpy as np
import pytest
from bpy_fixtures import CREATURE_KEYPOINTS, bpy, chain_bundle, clean_scene, make_chain_bundle  # noqa: F401  (fixtures)
from mathutils import Vector  # noqa: E402  (available once bpy is loaded)

from keydiff3d_addon.importer import PROP_KEYPOINT, PROP_RIG, RigImportError, build_rig, import_bundle
from keydiff3d_addon.rigcore import METHODS, read_bundle, write_bundle, zip_bundle
from keydiff3d_addon.rigcore import read_bundle as addon_read_bundle
from keydiff3d_addon.weights import recompute_weights

pytestmark = pytest.mark.bpy


def blender_weights(mesh_obj, bone_names: list[str]) -> np.ndarray:
    """(V, B) weights read back from the vertex groups, columns in `bone_names` order."""
    column = {group.index: bone_names.index(group.name) for group in mesh_obj.vertex_groups if group.name in bone_names}
    dense = np.zeros((len(mesh_obj.data.vertices), len(bone_names)))
    counts = np.zeros(len(mesh_obj.data.vertices), int)
    for vertex in mesh_obj.data.vertices:
        counts[vertex.index] = len(vertex.groups)
        for element in vertex.groups:
            dense[vertex.index, column[element.group]] = element.weight
    return dense, counts


def vertex_positions(mesh) -> np.ndarray:
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    return co.reshape(-1, 3).astype(np.float64)


def scene_state() -> dict[str, list[str]]:
    return {
        kind: sorted(getattr(bpy.data, kind).keys())
        for kind in ("objects", "meshes", "armatures", "materials", "collections")
    }


def test_import_builds_tree_of_deform_bones(clean_scene, chain_bundle):
    bundle = read_bundle(chain_bundle)
    rig = import_bundle(chain_bundle / "rig.json")
    bones = rig.armature.data.bones
    n = len(CREATURE_KEYPOINTS)
    assert len([b for b in bones if b.use_deform]) == n - 1 == len(bones)
    assert [b.name for b in bones] == [b.name for b in bundle.skeleton.bones]
    for source in bundle.skeleton.bones:
        bone = bones[source.name]
        assert (bone.parent.name if bone.parent else None) == source.parent
        assert bone.use_connect == source.connected
        assert bone[PROP_KEYPOINT] == source.keypoint
        tail = rig.placement.apply(source.tail)
        assert np.allclose(bone.tail_local, tail, atol=1e-5)
    assert rig.mesh.parent == rig.armature
    modifiers = [m for m in rig.mesh.modifiers if m.type == "ARMATURE"]
    assert len(modifiers) == 1 and modifiers[0].object == rig.armature


def test_bone_roll_comes_from_the_bundle(clean_scene, chain_bundle):
    bundle = read_bundle(chain_bundle)
    rig = import_bundle(chain_bundle, target_height=0)
    bpy.context.view_layer.objects.active = rig.armature
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        rolls = {b.name: b.roll for b in rig.armature.data.edit_bones}
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    for bone in bundle.skeleton.bones:
        assert rolls[bone.name] == pytest.approx(bone.roll, abs=1e-5)


def test_every_vertex_weighted_with_at_most_four_influences(clean_scene, chain_bundle):
    bundle = read_bundle(chain_bundle)
    rig = import_bundle(chain_bundle)
    names = bundle.skin.bone_names
    dense, counts = blender_weights(rig.mesh, names)
    assert len(dense) == len(bundle.vertices)
    assert counts.min() >= 1 and counts.max() <= 4
    assert np.allclose(dense.sum(1), 1.0, atol=1e-5)
    assert np.allclose(dense, bundle.skin.dense(len(names)), atol=1e-6)  # exact copy of skin.npz


def test_placement_target_height_feet_on_ground_centred(clean_scene, chain_bundle):
    bundle = read_bundle(chain_bundle)
    rig = import_bundle(chain_bundle, target_height=1.8)
    v = vertex_positions(rig.mesh.data)
    assert np.ptp(v[:, 2]) == pytest.approx(1.8, rel=1e-5)
    assert v[:, 2].min() == pytest.approx(0.0, abs=1e-6)
    assert (v[:, :2].min(0) + v[:, :2].max(0)) / 2 == pytest.approx([0.0, 0.0], abs=1e-6)
    assert tuple(rig.mesh.scale) == (1.0, 1.0, 1.0) and tuple(rig.armature.scale) == (1.0, 1.0, 1.0)
    # same placement for bones: the heads/tails stay on the (scaled) keypoints
    rec = json.loads(rig.armature[PROP_RIG])
    assert np.allclose(rec["keypoints"], rig.placement.apply(bundle.skeleton.keypoints), atol=1e-5)


def test_target_height_zero_keeps_bundle_coordinates(clean_scene, chain_bundle):
    bundle = read_bundle(chain_bundle)
    rig = import_bundle(chain_bundle, target_height=0)
    assert np.allclose(vertex_positions(rig.mesh.data), bundle.vertices, atol=1e-6)


def test_vertex_colours_kept(clean_scene, chain_bundle):
    bundle = read_bundle(chain_bundle)
    rig = import_bundle(chain_bundle)
    attribute = rig.mesh.data.color_attributes["Col"]
    assert attribute.domain == "POINT"
    srgb = np.empty(len(bundle.vertices) * 4, np.float32)
    attribute.data.foreach_get("color_srgb", srgb)
    assert np.abs(srgb.reshape(-1, 4) * 255 - bundle.colors).max() <= 0.51
    assert rig.mesh.data.materials[0] is not None


def test_y_up_bundle_lands_like_the_z_up_one(clean_scene, tmp_path):
    z_dir = make_chain_bundle(tmp_path / "z")
    bundle = read_bundle(z_dir)
    to_y_up = lambda p: np.stack([p[..., 0], p[..., 2], -p[..., 1]], -1)  # noqa: E731
    bundle.vertices = to_y_up(bundle.vertices).astype(np.float32)
    bundle.skeleton.keypoints = to_y_up(bundle.skeleton.keypoints)
    for bone in bundle.skeleton.bones:
        bone.head, bone.tail = to_y_up(bone.head), to_y_up(bone.tail)
    bundle.up_axis = "Y"
    write_bundle(tmp_path / "y", bundle)
    z_rig = import_bundle(z_dir, name="z")
    y_rig = import_bundle(tmp_path / "y", name="y")
    assert np.allclose(vertex_positions(z_rig.mesh.data), vertex_positions(y_rig.mesh.data), atol=1e-5)
    for bone in z_rig.armature.data.bones:
        assert np.allclose(bone.tail_local, y_rig.armature.data.bones[bone.name].tail_local, atol=1e-5)


def test_zip_bundle_and_directory_import_alike(clean_scene, chain_bundle, tmp_path):
    archive = zip_bundle(chain_bundle, tmp_path / "rig.zip")
    rig = import_bundle(archive)
    assert rig.armature.name == "rig_rig" and len(rig.mesh.data.vertices) == len(read_bundle(chain_bundle).vertices)


def test_root_bone_from_bundle_or_on_request(clean_scene, tmp_path):
    n = len(CREATURE_KEYPOINTS)
    with_root = import_bundle(make_chain_bundle(tmp_path / "a", root_bone=True), name="a")
    bones = with_root.armature.data.bones
    assert len([b for b in bones if b.use_deform]) == n - 1 and len(bones) == n
    roots = [b for b in bones if b.parent is None]
    assert len(roots) == 1 and not roots[0].use_deform
    added = import_bundle(make_chain_bundle(tmp_path / "b"), name="b", root_bone=True)
    bones = added.armature.data.bones
    roots = [b for b in bones if b.parent is None]
    assert len(bones) == n and len(roots) == 1 and not roots[0].use_deform
    assert np.allclose(roots[0].head_local, 0.0)
    assert roots[0].name not in added.mesh.vertex_groups


def test_leaf_bones_get_their_own_groups(clean_scene, tmp_path):
    bundle_dir = make_chain_bundle(tmp_path / "leaves", leaf_bones=True)
    bundle = read_bundle(bundle_dir)
    rig = import_bundle(bundle_dir)
    leaves = [b for b in bundle.skeleton.bones if b.kind == "leaf"]
    assert len(leaves) == 2  # the head and the arm tip
    bones = rig.armature.data.bones
    assert len(bones) == len(CREATURE_KEYPOINTS) - 1 + len(leaves)
    for leaf in leaves:
        assert bones[leaf.name].use_deform and bones[leaf.name].use_connect
        assert bones[leaf.name].parent.name == leaf.parent
        assert leaf.name in rig.mesh.vertex_groups


def test_keypoint_empties(clean_scene, chain_bundle):
    rig = import_bundle(chain_bundle, keypoint_empties=True)
    assert len(rig.empties) == len(CREATURE_KEYPOINTS)
    for index, empty in enumerate(rig.empties):
        assert empty.parent == rig.armature
        assert np.allclose(empty.location, rig.placement.apply(CREATURE_KEYPOINTS[index]), atol=1e-5)


def test_rotating_a_bone_moves_its_vertices_only(clean_scene, tmp_path):
    directory = make_chain_bundle(tmp_path / "k2", k=2)  # 2 influences: most vertices ignore most bones
    bundle = read_bundle(directory)
    rig = import_bundle(directory)
    top = next(b for b in bundle.skeleton.bones if b.keypoint == 3)  # the bone ending at the head
    column = bundle.skin.bone_names.index(top.name)
    dense = bundle.skin.dense(len(bundle.skin.bone_names))
    rest = vertex_positions(rig.mesh.evaluated_get(bpy.context.evaluated_depsgraph_get()).data)

    pose_bone = rig.armature.pose.bones[top.name]
    pose_bone.rotation_mode = "XYZ"
    pose_bone.rotation_euler = (0.0, 0.0, 0.0)
    pose_bone.rotation_euler[0] = np.radians(60)
    bpy.context.view_layer.update()
    posed = vertex_positions(rig.mesh.evaluated_get(bpy.context.evaluated_depsgraph_get()).data)
    moved = np.linalg.norm(posed - rest, axis=1)

    untouched = dense[:, column] == 0
    assert untouched.any() and moved[untouched].max() < 1e-6
    owned = dense[:, column] > 0.9
    assert owned.sum() > 10 and moved[owned].min() > 1e-3
    # a vertex moves in proportion to its weight on the bone (linear blend skinning)
    far = owned & (moved > np.percentile(moved[owned], 50))
    assert moved[far].mean() > 0.05


def test_corrupt_skin_file_leaves_scene_unchanged(clean_scene, chain_bundle):
    bpy.ops.mesh.primitive_cube_add()
    before = scene_state()
    (chain_bundle / "skin.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(RigImportError, match="skin"):
        import_bundle(chain_bundle)
    assert scene_state() == before


def test_failure_while_building_removes_everything(clean_scene, chain_bundle):
    bpy.ops.mesh.primitive_cube_add()
    before = scene_state()
    bundle = addon_read_bundle(chain_bundle)
    bone = bundle.skeleton.bones[-1]
    bone.tail = bone.head.copy()  # Blender drops zero-length bones: found after mesh, weights and armature exist
    with pytest.raises(RigImportError, match="zero-length"):
        build_rig(bundle, name="broken")
    assert scene_state() == before
    assert bpy.context.mode == "OBJECT"


def test_names_blender_would_truncate_are_refused(clean_scene, chain_bundle):
    before = scene_state()
    bundle = addon_read_bundle(chain_bundle)
    bone = bundle.skeleton.bones[-1]
    long_name = "x" * 80
    bundle.skin.bone_names[bundle.skin.bone_names.index(bone.name)] = long_name
    bone.name = long_name
    with pytest.raises(RigImportError, match="63-byte"):
        build_rig(bundle)
    assert scene_state() == before


def test_cancelling_during_import_removes_everything(clean_scene, chain_bundle):
    from keydiff3d.errors import Cancelled
    from keydiff3d.progress import Progress

    before = scene_state()
    seen = []

    def callback(stage, fraction, message):
        seen.append(message)
        if message == "building the armature":
            progress.cancel()  # takes effect at the next update, after the last data-block exists

    progress = Progress(callback)
    with pytest.raises(Cancelled):
        import_bundle(chain_bundle, progress=progress, keypoint_empties=True)
    assert "writing vertex groups" in seen
    assert scene_state() == before


def test_missing_bundle_is_a_clear_error(clean_scene, tmp_path):
    with pytest.raises(RigImportError, match="no rig bundle"):
        import_bundle(tmp_path / "nothing_here")


def test_recompute_weights_matches_rigcore_and_keeps_limits(clean_scene, chain_bundle):
    from keydiff3d_addon.rigcore import compute_skin_weights
    from keydiff3d_addon.weights import rest_bones

    rig = import_bundle(chain_bundle, target_height=2.0)
    bpy.context.view_layer.update()  # the mesh is evaluated, as in a session: the in-scene write path
    skin = recompute_weights(bpy.context, rig.mesh, method="gaussian", params={"sigma": 0.12}, k=3)
    assert not rig.mesh.hide_viewport  # hidden from the depsgraph only while writing
    expected = compute_skin_weights(vertex_positions(rig.mesh.data), rest_bones(rig.armature), sigma=0.12, k=3)
    dense, counts = blender_weights(rig.mesh, skin.bone_names)
    assert counts.max() <= 3 and counts.min() >= 1
    assert np.allclose(dense, expected.dense(len(skin.bone_names)), atol=1e-6)
    assert np.allclose(dense.sum(1), 1.0, atol=1e-5)

    other = next(m for m in METHODS if m != "gaussian")
    smooth = recompute_weights(bpy.context, rig.armature, method=other, k=4)
    dense_smooth, counts = blender_weights(rig.mesh, smooth.bone_names)
    assert counts.max() <= 4 and np.allclose(dense_smooth.sum(1), 1.0, atol=1e-5)
    assert not np.allclose(dense_smooth, dense, atol=1e-3)  # the method changed the weights


def test_recompute_weights_follows_edited_bones(clean_scene, chain_bundle):
    from keydiff3d_addon.weights import rest_bones

    rig = import_bundle(chain_bundle)
    arm = rig.armature
    names = [b.name for b in arm.data.bones]
    arm_bone = next(b.name for b in arm.data.bones if b[PROP_KEYPOINT] == 4)  # the sideways limb
    before, _ = blender_weights(rig.mesh, names)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    edit_bone = arm.data.edit_bones[arm_bone]
    edit_bone.use_connect = False
    edit_bone.tail = edit_bone.head - Vector((0.0, 0.0, edit_bone.length))  # now it hangs down
    new_tail = np.array(edit_bone.tail)
    bpy.ops.object.mode_set(mode="OBJECT")
    assert np.allclose(next(b for b in rest_bones(arm) if b.name == arm_bone).tail, new_tail, atol=1e-6)
    recompute_weights(bpy.context, rig.mesh, method="gaussian", params={"sigma": 0.05}, k=4)
    after, _ = blender_weights(rig.mesh, names)
    limb = names.index(arm_bone)
    assert np.abs(after - before).max() > 0.3
    tip = vertex_positions(rig.mesh.data)[:, 0].argmax()  # the sideways limb's tip, far from its new place
    assert after[tip, limb] < before[tip, limb] - 0.3


def test_recompute_weights_needs_a_rig(clean_scene):
    from keydiff3d_addon.weights import RigNotFound

    bpy.ops.mesh.primitive_cube_add()
    with pytest.raises(RigNotFound, match="no Armature modifier"):
        recompute_weights(bpy.context, bpy.context.active_object)
