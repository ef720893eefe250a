"""Skinned GLB export: structure, y-up conversion, and a round trip through Blender's glTF importer."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from keydiff3d.rigging.glb import build_glb, write_glb
from keydiff3d_addon.rigcore import RigBundle, build_skeleton, compute_skin_weights


def _bundle(root_bone=True) -> RigBundle:
    import trimesh

    parts = []
    keypoints = np.array([[0, 0, 0], [0, 0, 0.5], [0, 0, 1.0], [0.4, 0, 0.8], [-0.4, 0, 0.8]])
    a = np.zeros((5, 5))
    for i, j in [(0, 1), (1, 2), (1, 3), (1, 4)]:
        a[i, j] = a[j, i] = 1.0
        m = trimesh.creation.cylinder(radius=0.08, segment=[keypoints[i], keypoints[j]], sections=12)
        parts.append(m)
    mesh = trimesh.util.concatenate(parts)
    v = mesh.vertices.astype(np.float32)
    colors = np.tile(np.array([[255, 128, 0, 255]], np.uint8), (len(v), 1))
    skeleton = build_skeleton(keypoints, a, root=0, root_bone=root_bone, leaf_bones=True)
    skin = compute_skin_weights(v, skeleton, k=4)
    return RigBundle(v, mesh.faces.astype(np.int32), colors, skeleton, skin)


def _gltf_json(data: bytes) -> dict:
    magic, version, total = struct.unpack("<4sII", data[:12])
    assert magic == b"glTF" and version == 2 and total == len(data)
    length, kind = struct.unpack("<I4s", data[12:20])
    assert kind == b"JSON" and length % 4 == 0
    return json.loads(data[20 : 20 + length])


def test_glb_structure():
    bundle = _bundle()
    doc = _gltf_json(build_glb(bundle))
    bones = bundle.skeleton.bones
    skin = doc["skins"][0]
    assert len(skin["joints"]) == len(bones)
    assert [doc["nodes"][j]["name"] for j in skin["joints"]] == [b.name for b in bones]
    attributes = doc["meshes"][0]["primitives"][0]["attributes"]
    assert {"POSITION", "NORMAL", "JOINTS_0", "WEIGHTS_0", "COLOR_0"} <= set(attributes)
    assert doc["accessors"][attributes["JOINTS_0"]]["componentType"] == 5123  # unsigned short
    assert doc["accessors"][attributes["WEIGHTS_0"]]["componentType"] == 5126
    assert doc["accessors"][skin["inverseBindMatrices"]]["type"] == "MAT4"
    children = {c for n in doc["nodes"] for c in n.get("children", [])}
    assert skin["skeleton"] not in children  # one root joint: the root bone


def test_glb_loads_in_trimesh_y_up(tmp_path):
    import trimesh

    bundle = _bundle()
    write_glb(tmp_path / "rig.glb", bundle)
    loaded = trimesh.load(tmp_path / "rig.glb", force="mesh", process=False)
    v = bundle.vertices
    np.testing.assert_allclose(loaded.vertices, np.stack([v[:, 0], v[:, 2], -v[:, 1]], 1), atol=1e-6)
    np.testing.assert_array_equal(loaded.faces, bundle.faces)


@pytest.mark.bpy
def test_blender_gltf_import_keeps_skeleton_and_weights(tmp_path):
    bpy = pytest.importorskip("bpy")
    from keydiff3d_addon.rigcore import bone_rest_z_axis

    bundle = _bundle()
    write_glb(tmp_path / "rig.glb", bundle)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=str(tmp_path / "rig.glb"))
    armatures = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    assert len(armatures) == 1
    bones = armatures[0].data.bones
    assert len(bones) == len(bundle.skeleton.bones)
    for b in bundle.skeleton.bones:
        imported = bones[b.name]
        assert (imported.parent.name if imported.parent else None) == b.parent
        np.testing.assert_allclose(armatures[0].matrix_world @ imported.head_local, b.head, atol=1e-5)
        axes = np.asarray(armatures[0].matrix_world)[:3, :3] @ np.asarray(imported.matrix_local)[:3, :3]
        direction = (b.tail - b.head) / np.linalg.norm(b.tail - b.head)
        z0 = bone_rest_z_axis(direction)
        z = z0 * np.cos(b.roll) + np.cross(direction, z0) * np.sin(b.roll)  # z0 is perpendicular to the bone
        np.testing.assert_allclose(axes[:, 1], direction, atol=1e-4)  # bone axes (and so the roll) survive
        np.testing.assert_allclose(axes[:, 2], z, atol=1e-4)
    mesh = next(o for o in bpy.data.objects if o.type == "MESH" and len(o.data.vertices) == len(bundle.vertices))
    co = np.empty(len(bundle.vertices) * 3, np.float32)
    mesh.data.vertices.foreach_get("co", co)
    np.testing.assert_allclose(
        (np.asarray(mesh.matrix_world)[:3, :3] @ co.reshape(-1, 3).T).T, bundle.vertices, atol=1e-5
    )
    groups = [g.name for g in mesh.vertex_groups]
    weights = np.zeros((len(bundle.vertices), len(groups)))
    for v in mesh.data.vertices:
        for g in v.groups:
            weights[v.index, g.group] = g.weight
    expected = bundle.skin.dense()
    columns = [groups.index(name) for name in bundle.skin.bone_names]
    np.testing.assert_allclose(weights[:, columns], expected, atol=1e-6)
    assert np.abs(np.delete(weights, columns, axis=1)).max(initial=0) == 0


@pytest.mark.bpy
def test_bone_roll_matches_blender(tmp_path):
    """Our model of Blender's roll-0 bone axes (and thus our roll) agrees with Blender's edit bones."""
    bpy = pytest.importorskip("bpy")
    from keydiff3d_addon.rigcore import bone_rest_z_axis, bone_roll

    bpy.ops.wm.read_factory_settings(use_empty=True)
    armature = bpy.data.armatures.new("A")
    obj = bpy.data.objects.new("A", armature)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    rng = np.random.default_rng(0)
    directions = list(rng.normal(size=(40, 3))) + [
        np.array(d, float) for d in [(0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1), (0, -1, 1e-5)]
    ]
    for i, d in enumerate(directions):
        bone = armature.edit_bones.new(f"b{i}")
        bone.head, bone.tail, bone.roll = (0, 0, 0), tuple(d), 0.0
        np.testing.assert_allclose(bone.z_axis, bone_rest_z_axis(d), atol=1e-3)
        bone.roll = bone_roll(np.zeros(3), d)
        u = d / np.linalg.norm(d)
        target = np.array([0, 0, 1.0]) if abs(u[2]) <= np.cos(np.radians(30)) else np.array([0, -1.0, 0])
        target = target - (target @ u) * u
        np.testing.assert_allclose(bone.z_axis, target / np.linalg.norm(target), atol=1e-3)
    bpy.ops.object.mode_set(mode="OBJECT")


def test_quaternions_and_bone_frames():
    from keydiff3d.rigging.glb import bone_frame, quaternion_xyzw

    rng = np.random.default_rng(0)
    for _ in range(50):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        x, y, z, w = q
        r = np.array(
            [
                [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
            ]
        )
        got = np.asarray(quaternion_xyzw(r))
        assert np.allclose(got, q, atol=1e-9) or np.allclose(got, -q, atol=1e-9)
    for b in _bundle().skeleton.bones:
        frame = bone_frame(b, "Z")
        np.testing.assert_allclose(frame[:3, :3].T @ frame[:3, :3], np.eye(3), atol=1e-12)
        assert np.linalg.det(frame[:3, :3]) == pytest.approx(1.0)
        direction = (b.tail - b.head) / np.linalg.norm(b.tail - b.head)
        np.testing.assert_allclose(frame[:3, 1], [direction[0], direction[2], -direction[1]], atol=1e-12)
        np.testing.assert_allclose(frame[:3, 3], [b.head[0], b.head[2], -b.head[1]], atol=1e-12)
