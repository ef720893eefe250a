"""What each engine receives, read back by readers that are not Blender: every export preset's FBX through
ufbx (the FBX reader Godot uses; in its own process, see fbx_reader.py), the glTF through pygltflib
against the rules of the Khronos glTF validator that can be checked without it.

Every export starts from a posed rig in Pose mode, in a scene with unit scale 1 and 0.01: the files must
hold the rest pose, the rig 1.7 m tall, no rotation or scale on the root nodes, at most 4 normalised
influences per vertex, and Blender must be left as it was (mode, selection, pose, bones, weights).
"""

from __future__ import annotations

import numpy as np
import pygltflib
import pytest
from bpy_fixtures import bpy, chain_bundle, clean_scene, hierarchy, world_positions  # noqa: F401  (fixtures)
from fbx_reader import read_fbx
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from keydiff3d_addon.exporter import export_rig
from keydiff3d_addon.importer import PROP_KEYPOINT, import_bundle

pytestmark = pytest.mark.bpy

HEIGHT_M = 1.7
# Blender world (z up, -y front) -> the file's axes, as docs/EXPORT.md states for each preset
TO_Y_UP = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])  # (x, y, z) -> (x, z, -y): -Z forward, Y up
FBX_AXES = {  # preset -> (up, front as ufbx names them, Blender -> file rotation)
    "unity": ("POSITIVE_Y", "POSITIVE_Z", TO_Y_UP),
    "godot": ("POSITIVE_Y", "POSITIVE_Z", TO_Y_UP),
    "unreal": ("POSITIVE_Z", "NEGATIVE_Y", np.eye(3)),
}


def scene_snapshot(rig) -> dict:
    """Everything an export must leave as it was."""
    arm, mesh = rig.armature, rig.mesh
    weights = {g.name: [] for g in mesh.vertex_groups}
    for vertex in mesh.data.vertices:
        for element in vertex.groups:
            weights[mesh.vertex_groups[element.group].name].append((vertex.index, round(element.weight, 7)))
    return {
        "objects": sorted(bpy.data.objects.keys()),
        "meshes": sorted(bpy.data.meshes.keys()),
        "armatures": sorted(bpy.data.armatures.keys()),
        "collections": sorted(bpy.data.collections.keys()),
        "mode": bpy.context.mode,
        "active": bpy.context.view_layer.objects.active.name,
        "selected": sorted(o.name for o in bpy.context.view_layer.objects.selected),
        "bones": {
            b.name: (tuple(np.round(b.head_local, 6)), tuple(np.round(b.tail_local, 6)), b.use_deform)
            for b in arm.data.bones
        },
        "hierarchy": hierarchy(arm),
        "pose": {p.name: tuple(np.round(np.array(p.matrix_basis).ravel(), 6)) for p in arm.pose.bones},
        "weights": weights,
        "pose_position": arm.data.pose_position,
    }


@pytest.fixture(params=[1.0, 0.01], ids=["unit-scale-1", "unit-scale-0.01"])
def posed_rig(request, clean_scene, chain_bundle):
    """The creature rig, 1.7 m tall in a scene of the given unit scale, posed, in Pose mode."""
    bpy.context.scene.unit_settings.scale_length = request.param
    rig = import_bundle(chain_bundle, target_height=HEIGHT_M)
    bpy.context.view_layer.objects.active = rig.armature
    bpy.ops.object.mode_set(mode="POSE")
    bone_to = {b[PROP_KEYPOINT]: b.name for b in rig.armature.data.bones}  # by the keypoint each bone ends at
    for keypoint, angle in ((2, 0.6), (4, -0.9)):  # the trunk's middle and the sideways limb
        bone = rig.armature.pose.bones[bone_to[keypoint]]
        bone.rotation_mode = "XYZ"
        bone.rotation_euler = (angle, 0.3, 0.0)
    bpy.context.view_layer.update()
    rig.rest_world = world_positions(rig.mesh)  # the mesh data is the rest shape (the modifier deforms a copy)
    rig.metres_per_unit = request.param
    return rig


@pytest.mark.parametrize("target", ["unity", "unreal", "godot"])
def test_fbx_of_each_engine_read_by_ufbx(posed_rig, tmp_path, target):
    rig = posed_rig
    before = scene_snapshot(rig)
    result = export_rig(bpy.context, rig.armature, tmp_path / f"{target}.fbx", preset=target, fmt="fbx")
    assert scene_snapshot(rig) == before  # pose mode, selection, pose, bones and weights as they were
    fbx = read_fbx(result.path)

    up, front, to_file = FBX_AXES[target]
    assert (fbx["settings"]["up"], fbx["settings"]["front"]) == (up, front)
    unit = fbx["settings"]["unit_meters"]
    assert unit == pytest.approx(0.01 * 100 * rig.metres_per_unit)  # FBX declares the scene's unit

    roots = {n["name"]: n for n in fbx["nodes"] if n["parent"] is None}
    assert set(roots) == {"Armature", rig.mesh.name}
    for node in roots.values():  # no axis rotation, scale or offset hidden in a root node
        assert np.allclose(node["rotation"], [0, 0, 0, 1], atol=1e-6), (node["name"], node["rotation"])
        assert np.allclose(node["scale"], 1.0, atol=1e-6) and np.allclose(node["translation"], 0.0, atol=1e-6)

    bones = {n["name"]: n["parent"] for n in fbx["nodes"] if n["type"] == "BONE"}
    expected = {"root": "Armature", **{name: parent or "root" for name, parent in hierarchy(rig.armature).items()}}
    assert bones == expected  # one root bone under the armature node, no *_end leaf bones

    (mesh,) = fbx["meshes"]
    positions = np.array(mesh["world_positions"]) * unit  # metres, in the file's axes
    expected_positions = rig.rest_world * rig.metres_per_unit @ to_file.T
    assert np.allclose(positions, expected_positions, atol=1e-5)  # rest shape, right axes, right size
    up_axis = {"POSITIVE_Y": 1, "POSITIVE_Z": 2}[up]
    assert np.ptp(positions[:, up_axis]) == pytest.approx(HEIGHT_M, rel=1e-5)
    assert positions[:, up_axis].min() == pytest.approx(0.0, abs=1e-6)  # feet on the ground

    (skin,) = mesh["skins"]
    nodes = {n["name"]: n for n in fbx["nodes"]}
    deform = {b.name for b in rig.armature.data.bones if b.use_deform}
    assert {c["bone"] for c in skin["clusters"] if c["num_weights"]} == deform
    for cluster in skin["clusters"]:  # the nodes hold the bind pose: the rest pose, not the current one
        assert np.allclose(cluster["bind_to_world"], nodes[cluster["bone"]]["node_to_world"], atol=1e-4 / unit)
    influences = np.array(skin["influences"])
    assert len(influences) == len(rig.rest_world) and influences.min() >= 1 and influences.max() <= 4
    assert np.allclose(skin["weight_sums"], 1.0, atol=1e-5)
    bind_poses = [p for p in fbx["poses"] if p["bind_pose"]]
    assert len(bind_poses) == 1 and {b["node"] for b in bind_poses[0]["bones"]} >= deform


# ------------------------------------------------------------------------------------------ glTF

COMPONENTS = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


def accessor_data(gltf: pygltflib.GLTF2, blob: bytes, index: int) -> np.ndarray:
    """(count, width) array of accessor `index`, checking the validator's bounds and alignment rules."""
    accessor = gltf.accessors[index]
    view = gltf.bufferViews[accessor.bufferView]
    dtype = np.dtype(COMPONENTS[accessor.componentType])
    width = WIDTH[accessor.type]
    offset = (view.byteOffset or 0) + (accessor.byteOffset or 0)
    stride = view.byteStride or dtype.itemsize * width
    assert offset % dtype.itemsize == 0, "ACCESSOR_TOTAL_OFFSET_ALIGNMENT"
    assert stride % 4 == 0 or view.byteStride is None, "BUFFER_VIEW_INVALID_BYTE_STRIDE"
    needed = (accessor.count - 1) * stride + dtype.itemsize * width
    assert (accessor.byteOffset or 0) + needed <= view.byteLength, "ACCESSOR_TOO_LONG"
    assert (view.byteOffset or 0) + view.byteLength <= gltf.buffers[view.buffer].byteLength, "BUFFER_VIEW_TOO_LONG"
    rows = (
        [np.frombuffer(blob, dtype, width, offset + i * stride) for i in range(accessor.count)]
        if view.byteStride
        else None
    )
    if rows is not None:
        return np.array(rows)
    return np.frombuffer(blob, dtype, accessor.count * width, offset).reshape(accessor.count, width)


def node_matrix(node) -> np.ndarray:
    if node.matrix:
        assert node.translation is None and node.rotation is None and node.scale is None, "NODE_MATRIX_TRS"
        return np.array(node.matrix, np.float64).reshape(4, 4).T  # glTF matrices are column-major
    quaternion = node.rotation or (0.0, 0.0, 0.0, 1.0)  # x, y, z, w
    assert abs(np.linalg.norm(quaternion) - 1.0) < 1e-5, "ROTATION_NON_UNIT"
    out = np.eye(4)
    out[:3, :3] = Rotation.from_quat(quaternion).as_matrix() * np.array(node.scale or (1.0, 1.0, 1.0))
    out[:3, 3] = node.translation or (0.0, 0.0, 0.0)
    return out


def test_gltf_for_godot_follows_the_validator_rules(posed_rig, tmp_path):
    rig = posed_rig
    before = scene_snapshot(rig)
    result = export_rig(bpy.context, rig.armature, tmp_path / "godot", preset="godot")  # the preset's format: glTF
    assert result.format == "glb" and result.path.suffix == ".glb"
    assert scene_snapshot(rig) == before
    gltf = pygltflib.GLTF2().load(str(result.path))
    blob = gltf.binary_blob()
    assert gltf.asset.version == "2.0"

    parents = {child: index for index, node in enumerate(gltf.nodes) for child in node.children or []}
    world = {}

    def world_of(index: int) -> np.ndarray:
        if index not in world:
            local = node_matrix(gltf.nodes[index])
            world[index] = world_of(parents[index]) @ local if index in parents else local
        return world[index]

    for index in gltf.scenes[gltf.scene].nodes:  # root nodes: no rotation or scale (metres, y up already)
        assert np.allclose(node_matrix(gltf.nodes[index])[:3, :3], np.eye(3), atol=1e-6), gltf.nodes[index].name
    (skin,) = gltf.skins
    joints = [gltf.nodes[j].name for j in skin.joints]
    assert set(joints) == {"root", *hierarchy(rig.armature)}
    for joint in skin.joints:  # one common root for all joints (SKIN_NO_COMMON_ROOT)
        chain = [joint]
        while chain[-1] in parents:
            chain.append(parents[chain[-1]])
        assert gltf.nodes[chain[-1]].name == "Armature"
    inverse_binds = accessor_data(gltf, blob, skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
    assert len(inverse_binds) == len(skin.joints)
    for joint, inverse_bind in zip(skin.joints, inverse_binds):  # the nodes hold the bind (rest) pose
        assert np.allclose(world_of(joint) @ inverse_bind, np.eye(4), atol=1e-5), gltf.nodes[joint].name
        assert np.allclose(inverse_bind[3], [0, 0, 0, 1]), "ACCESSOR_INVALID_IBM"

    (mesh_node,) = [n for n in gltf.nodes if n.mesh is not None]
    assert mesh_node.skin == 0
    (primitive,) = gltf.meshes[mesh_node.mesh].primitives
    attributes = primitive.attributes
    counts = {
        gltf.accessors[i].count
        for i in (attributes.POSITION, attributes.NORMAL, attributes.JOINTS_0, attributes.WEIGHTS_0)
    }
    assert len(counts) == 1, "MESH_PRIMITIVE_UNEQUAL_ACCESSOR_COUNT"
    sets = [
        name
        for name, value in vars(attributes).items()
        if name.startswith(("JOINTS_", "WEIGHTS_")) and value is not None
    ]
    assert sorted(sets) == ["JOINTS_0", "WEIGHTS_0"]  # one set: at most 4 influences per vertex
    position = gltf.accessors[attributes.POSITION]
    positions = accessor_data(gltf, blob, attributes.POSITION)
    assert np.allclose(position.min, positions.min(0)) and np.allclose(
        position.max, positions.max(0)
    )  # ACCESSOR_MIN/MAX_MISMATCH
    assert np.ptp(positions[:, 1]) == pytest.approx(HEIGHT_M, rel=1e-5) and positions[:, 1].min() == pytest.approx(
        0, abs=1e-6
    )
    # rest shape, y up, metres: each original vertex is in the file (glTF may split vertices at seams)
    expected = rig.rest_world * rig.metres_per_unit @ TO_Y_UP.T
    assert cKDTree(positions).query(expected)[0].max() < 1e-5
    joints_data = accessor_data(gltf, blob, attributes.JOINTS_0)
    weights = accessor_data(gltf, blob, attributes.WEIGHTS_0).astype(np.float64)
    assert gltf.accessors[attributes.JOINTS_0].componentType in (5121, 5123)
    assert gltf.accessors[attributes.WEIGHTS_0].componentType == 5126
    assert (joints_data < len(skin.joints)).all(), "ACCESSOR_JOINTS_INDEX_OOB"
    assert (weights >= 0).all(), "ACCESSOR_WEIGHTS_NEGATIVE"
    assert np.allclose(weights.sum(1), 1.0, atol=1e-5), "ACCESSOR_WEIGHTS_NON_NORMALIZED"
    used = weights > 0
    for row_joints, row_used in zip(joints_data, used):  # a joint appears once per vertex (ACCESSOR_JOINTS_DUPLICATE)
        assert len(set(row_joints[row_used])) == row_used.sum()
