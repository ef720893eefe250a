"""The add-on's own imports in the real bpy module (`import_bundle`, and `remote.attach_rig` of Rig
Selected Mesh) on hostile bundles: refused by the shared rigcore reader with one sentence, before any
work, and the scene left as it was. Issue 11, faults 7 (zip bomb), 8 (bones), 9 (skinning
parameters rerun on the main thread) and 20 (parents with cycles).
"""

from __future__ import annotations

import pytest
from bpy_fixtures import bpy, clean_scene  # noqa: F401  (fixtures; bpy set up first)
from hostile_inputs import add_chain_bones, edit_rig_json, peak_memory, small_bundle, zip_of_directory

from keydiff3d_addon import remote
from keydiff3d_addon.client.jobs import ResultRejected
from keydiff3d_addon.importer import RigImportError, import_bundle
from keydiff3d_addon.rigcore import read_bundle
from keydiff3d_addon.rigcore.bundle import MAX_BONES, MAX_FILE_BYTES, MAX_SMOOTH_ITERATIONS

pytestmark = pytest.mark.bpy


def scene_state() -> dict[str, list[str]]:
    return {kind: sorted(getattr(bpy.data, kind).keys()) for kind in ("objects", "meshes", "armatures", "materials")}


def mesh_object(bundle_dir) -> bpy.types.Object:
    """The bundle's mesh as an unrigged Blender object (what Rig Selected Mesh uploads)."""
    bundle = read_bundle(bundle_dir)
    mesh = bpy.data.meshes.new("Creature")
    mesh.from_pydata(bundle.vertices.tolist(), [], bundle.faces.tolist())
    obj = bpy.data.objects.new("Creature", mesh)
    bpy.context.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    return obj


@pytest.fixture
def bundle_dir(tmp_path):
    return small_bundle(tmp_path / "bundle", keypoints=5)


def test_a_good_bundle_imports_and_attaches(clean_scene, bundle_dir):
    rig = import_bundle(bundle_dir)
    assert len(rig.armature.data.bones) == 4
    armature = remote.attach_rig(bpy.context, mesh_object(bundle_dir), remote.read_result(bundle_dir))
    assert armature.type == "ARMATURE" and len(armature.data.bones) == 4


def test_fault7_zip_bomb_is_refused_by_the_import(clean_scene, bundle_dir, tmp_path):
    bomb = zip_of_directory(bundle_dir, tmp_path / "bomb.zip", {"mesh.ply": MAX_FILE_BYTES + 1})
    before = scene_state()
    limit = "mesh.ply in bomb.zip holds .* bytes unpacked; the limit is"
    with peak_memory() as peak, pytest.raises(RigImportError, match=limit):
        import_bundle(bomb)
    assert peak[0] < 32 * 1024 * 1024 and scene_state() == before


def test_fault8_bone_count_is_capped_in_the_import(clean_scene, bundle_dir):
    obj = mesh_object(bundle_dir)
    edit_rig_json(bundle_dir, lambda doc: add_chain_bones(doc, MAX_BONES + 1 - len(doc["skeleton"]["bones"])))
    before = scene_state()
    with pytest.raises(RigImportError, match=f"at most {MAX_BONES} bones"):
        import_bundle(bundle_dir)
    with pytest.raises(ResultRejected, match=f"at most {MAX_BONES} bones"):
        remote.attach_rig(bpy.context, obj, remote.read_result(bundle_dir))
    assert scene_state() == before and before["armatures"] == []


def test_fault8_a_rig_at_the_bone_limit_still_imports(clean_scene, bundle_dir):
    edit_rig_json(bundle_dir, lambda doc: add_chain_bones(doc, MAX_BONES - len(doc["skeleton"]["bones"])))
    assert len(import_bundle(bundle_dir).armature.data.bones) == MAX_BONES


@pytest.mark.parametrize(
    "params",
    [
        {"smooth_iterations": MAX_SMOOTH_ITERATIONS + 1},
        {"smooth_iterations": 10**9},
        {"sharpness": -1.0},
        {"smooth_step": 50.0},
    ],
)
def test_fault9_skinning_parameters_are_bounded_before_attach_rig_reruns_them(clean_scene, bundle_dir, params):
    obj = mesh_object(bundle_dir)
    edit_rig_json(bundle_dir, lambda doc: doc["skin"]["params"].update(params))
    before = scene_state()
    with pytest.raises(ResultRejected, match=f"skin.params.{next(iter(params))}"):
        remote.attach_rig(bpy.context, obj, remote.read_result(bundle_dir))
    with pytest.raises(RigImportError, match="skin.params"):
        import_bundle(bundle_dir)
    assert scene_state() == before and obj.parent is None and len(obj.vertex_groups) == 0


def test_fault20_parents_with_a_cycle_are_refused_by_the_import(clean_scene, bundle_dir):
    obj = mesh_object(bundle_dir)
    edit_rig_json(bundle_dir, lambda doc: doc["skeleton"].__setitem__("parents", [-1, 2, 1, 4, 3]))
    before = scene_state()
    with pytest.raises(RigImportError, match="cycle"):
        import_bundle(bundle_dir)
    with pytest.raises(ResultRejected, match="cycle"):
        remote.attach_rig(bpy.context, obj, remote.read_result(bundle_dir))
    assert scene_state() == before and before["armatures"] == []
