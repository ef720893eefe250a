"""Blender's automatic weights (bone heat, Baran and Popovic 2007) on a given mesh and skeleton, as
a reference to measure skinning methods against (bpy module; the Blender add-on offers the same
operator to users).

The mesh is built as a user's Blender mesh would be (one object, welded vertices as given), the
armature from bone segments; `bpy.ops.object.parent_set(type='ARMATURE_AUTO')` then writes the
vertex groups. Bone heat can fail silently ("failed to find solution", shells no bone can see):
such vertices come back with an all-zero row, counted in `BoneHeat.unweighted`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass
class BoneHeat:
    """weights (V, B) over the given bones (0 columns for non-deforming ones), rows summing to 1 or 0;
    seconds spent in the operator; unweighted = vertices it left without weight."""

    weights: np.ndarray
    seconds: float
    unweighted: int


def blender_bone_heat(vertices, faces, heads, tails, parents, deform=None, names=None, rolls=None) -> BoneHeat:
    """Bone heat weights for `vertices` (V, 3), `faces` (F, 3) and bones given by heads/tails (B, 3),
    parents (B,) (-1 at roots, parent-first order), `deform` (B,) bool (default all), in one frame
    (z up). Resets the bpy scene to factory settings."""
    import bpy

    heads, tails = np.asarray(heads, np.float64), np.asarray(tails, np.float64)
    count = len(heads)
    deform = np.ones(count, bool) if deform is None else np.asarray(deform, bool)
    names = [f"bone_{i:03d}" for i in range(count)] if names is None else list(names)
    rolls = np.zeros(count) if rolls is None else np.asarray(rolls, np.float64)
    faces = np.asarray(faces, np.int32)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    mesh = bpy.data.meshes.new("creature")
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", np.asarray(vertices, np.float32).ravel())
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.update()
    obj = bpy.data.objects.new("creature", mesh)
    armature = bpy.data.armatures.new("Armature")
    rig = bpy.data.objects.new("Armature", armature)
    for o in (obj, rig):
        bpy.context.scene.collection.objects.link(o)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    edit_bones = []
    for i in range(count):
        eb = armature.edit_bones.new(names[i])
        eb.head, eb.tail, eb.roll = heads[i].tolist(), tails[i].tolist(), float(rolls[i])
        eb.use_deform = bool(deform[i])
        edit_bones.append(eb)
    for i, p in enumerate(parents):
        if p >= 0:
            edit_bones[i].parent = edit_bones[int(p)]
    bpy.ops.object.mode_set(mode="OBJECT")
    obj.select_set(True)
    rig.select_set(True)
    bpy.context.view_layer.objects.active = rig
    start = time.perf_counter()
    bpy.ops.object.parent_set(type="ARMATURE_AUTO")
    seconds = time.perf_counter() - start

    dense = np.zeros((len(vertices), count))
    column = {g.index: names.index(g.name) for g in obj.vertex_groups if g.name in names}
    for v in obj.data.vertices:
        for g in v.groups:
            if g.group in column:
                dense[v.index, column[g.group]] += g.weight
    total = dense.sum(1, keepdims=True)
    dense = np.where(total > 0, dense / np.maximum(total, 1e-12), 0.0)
    return BoneHeat(dense, seconds, int((total[:, 0] <= 0).sum()))
