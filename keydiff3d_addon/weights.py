# SPDX-License-Identifier: GPL-3.0-or-later
"""Recompute skinning weights in Blender with the shared numpy skinning (no backend).

Works on the armature's current rest pose (bones the user moved in edit mode count) and the mesh's
current vertices, both taken into armature space, so the result is what the Armature modifier sees.
"""

from __future__ import annotations

import bpy
import numpy as np

from .importer import PROP_KEYPOINT, PROP_KIND, write_vertex_groups
from .rigcore.skeleton import Bone
from .rigcore.skinning import SkinWeights, compute_skin_weights


class RigNotFound(RuntimeError):
    """The selection is not a KeyDiff3D rig (an armature with a mesh deformed by it)."""


def find_rig(obj: bpy.types.Object | None) -> tuple[bpy.types.Object, bpy.types.Object]:
    """(armature, mesh) for an active armature or for a mesh with an Armature modifier."""
    if obj is None:
        raise RigNotFound("select the rig's armature or its mesh first")
    if obj.type == "MESH":
        for modifier in obj.modifiers:
            if modifier.type == "ARMATURE" and modifier.object is not None:
                return modifier.object, obj
        raise RigNotFound(f"the mesh {obj.name!r} has no Armature modifier with an armature")
    if obj.type == "ARMATURE":
        for child in obj.children:
            if child.type == "MESH" and any(m.type == "ARMATURE" and m.object == obj for m in child.modifiers):
                return obj, child
        raise RigNotFound(f"no mesh is deformed by the armature {obj.name!r}")
    raise RigNotFound(f"{obj.name!r} is neither an armature nor a mesh")


def rest_bones(armature_obj: bpy.types.Object) -> list[Bone]:
    """The armature's rest bones in armature space, as rigcore `Bone`s (parents before children)."""
    bones = []
    for bone in armature_obj.data.bones:
        bones.append(
            Bone(
                name=bone.name,
                head=np.array(bone.head_local, np.float64),
                tail=np.array(bone.tail_local, np.float64),
                parent=bone.parent.name if bone.parent else None,
                keypoint=int(bone.get(PROP_KEYPOINT, -1)),
                deform=bone.use_deform,
                kind=str(bone.get(PROP_KIND, "edge")),
                connected=bone.use_connect,
            )
        )
    return bones


def mesh_arrays(mesh_obj: bpy.types.Object, to_space: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rest vertices (V, 3) mapped by the 4x4 `to_space` @ mesh.matrix_world, and triangles (T, 3)."""
    mesh = mesh_obj.data
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    matrix = to_space @ np.array(mesh_obj.matrix_world, np.float64)
    vertices = co.reshape(-1, 3).astype(np.float64) @ matrix[:3, :3].T + matrix[:3, 3]
    mesh.calc_loop_triangles()
    triangles = np.empty(len(mesh.loop_triangles) * 3, np.int32)
    mesh.loop_triangles.foreach_get("vertices", triangles)
    return vertices, triangles.reshape(-1, 3)


def recompute_weights(
    context: bpy.types.Context,
    obj: bpy.types.Object | None,
    *,
    sigma: float = 0.08,
    k: int = 4,
    method: str = "gaussian",
    progress=None,
) -> SkinWeights:
    """Skin the rig's mesh to its deform bones and replace those bones' vertex groups.
    Groups of non-deform bones and unrelated groups are left alone."""
    armature_obj, mesh_obj = find_rig(obj)
    if context.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    to_armature = np.linalg.inv(np.array(armature_obj.matrix_world, np.float64))
    vertices, triangles = mesh_arrays(mesh_obj, to_armature)
    skin = compute_skin_weights(
        vertices, rest_bones(armature_obj), sigma=sigma, k=k, method=method, faces=triangles, progress=progress
    )
    write_vertex_groups(context, mesh_obj, skin)
    return skin
