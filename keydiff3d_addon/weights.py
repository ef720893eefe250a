# SPDX-License-Identifier: GPL-3.0-or-later
"""Recompute skinning weights in Blender (no backend): rigcore's numpy skinning, by default with
the method and parameters the rig's bundle used, or Blender's own automatic weights (bone heat).

Works on the armature's current rest pose (bones the user moved in edit mode count) and the mesh's
current vertices, both taken into armature space, so the result is what the Armature modifier sees.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import bpy
import numpy as np

from .importer import PROP_KEYPOINT, PROP_KIND, PROP_RIG, write_vertex_groups
from .rigcore.presets import SkinningOptions
from .rigcore.skeleton import Bone
from .rigcore.skinning import METHODS, SkinningError, compute_skin_weights, parameter_problem
from .skin_methods import method_parameters, method_params, skin_kwargs


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


BUNDLE_METHOD = "BUNDLE"  # the rig's own method and parameters, as its bundle recorded them
BONE_HEAT = "BONE_HEAT"  # Blender's automatic weights (Parent > With Automatic Weights)


@dataclass
class Recomputed:
    """What `recompute_weights` did: method, parameters and k used, bones weighted, vertices left unweighted."""

    method: str
    params: dict
    k: int
    bone_names: list[str]
    unweighted: int = 0

    def describe(self) -> str:
        values = ", ".join(
            f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}"
            for name, value in self.params.items()
        )
        return f"{self.method.replace('_', ' ')}{f' ({values})' if values else ''}, k {self.k}"


def rig_skinning(armature_obj: bpy.types.Object) -> tuple[str, dict, int]:
    """(method, params, k) the rig's bundle was skinned with (its `keydiff3d_rig` record); for an
    armature not imported from a bundle, the default category preset's skinning."""
    try:
        skin = json.loads(armature_obj[PROP_RIG])["skin"]
        method, params, k = str(skin["method"]), dict(skin.get("params") or {}), int(skin["k"])
        if method in METHODS:
            return method, method_params(method, params), k
    except (KeyError, TypeError, ValueError, SkinningError):
        pass
    options = default_category_skinning()
    return options.method, method_params(options.method, options.kwargs()), options.k


def default_category_skinning() -> SkinningOptions:
    from .preset_choices import category_preset, default_category

    return category_preset(default_category()).skinning


@dataclass
class WeightsPlan:
    """A Recompute Weights run, read from the scene (main thread) and ready to solve on any thread.
    `solve(progress)` is numpy only; `apply(context, skin)` writes the groups (main thread)."""

    mesh_uid: int
    mesh_name: str
    vertex_count: int
    method: str
    kwargs: dict
    k: int
    vertices: np.ndarray
    triangles: np.ndarray
    bones: list[Bone]

    def solve(self, progress=None):
        """The new weights (rigcore's SkinWeights); `progress` may raise to cancel (nothing changes)."""
        return compute_skin_weights(
            self.vertices, self.bones, k=self.k, faces=self.triangles, progress=progress, **self.kwargs
        )

    def apply(self, context: bpy.types.Context, skin) -> Recomputed:
        """Replace the deform bones' vertex groups with `skin` (the mesh must be as it was read)."""
        if context.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")  # first: leaving edit mode writes its changes to the mesh
        mesh_obj = next((obj for obj in bpy.data.objects if obj.session_uid == self.mesh_uid), None)
        if mesh_obj is None or mesh_obj.type != "MESH" or len(mesh_obj.data.vertices) != self.vertex_count:
            raise RigNotFound(
                f"the mesh {self.mesh_name!r} changed while its weights were computed; nothing was changed"
            )
        replace_vertex_groups(context, mesh_obj, skin)
        return Recomputed(self.method, {n: v for n, v in self.kwargs.items() if n != "method"}, self.k, skin.bone_names)


def replace_vertex_groups(context: bpy.types.Context, mesh_obj: bpy.types.Object, skin) -> None:
    """`importer.write_vertex_groups`, all or nothing: the bones' previous groups are set aside under
    other names while the new ones are written, then removed; on any exception they get their names
    back and the groups and attributes the write left are removed (the exception propagates)."""
    mesh = mesh_obj.data
    previous = {}  # bone name -> the name its old group is kept under meanwhile
    for name in skin.bone_names:
        group = mesh_obj.vertex_groups.get(name)
        if group is not None:
            group.name = f"{name[:40]}.keydiff3d-previous"  # Blender makes it unique (and <= 63 bytes)
            previous[name] = group.name
    attributes = {attribute.name for attribute in mesh.attributes}
    try:
        write_vertex_groups(context, mesh_obj, skin)
    except BaseException:
        for name in skin.bone_names:
            if (group := mesh_obj.vertex_groups.get(name)) is not None:
                mesh_obj.vertex_groups.remove(group)
            if name not in attributes and (attribute := mesh.attributes.get(name)) is not None:
                mesh.attributes.remove(attribute)
        for name, kept in previous.items():
            mesh_obj.vertex_groups[kept].name = name
        raise
    for kept in previous.values():
        mesh_obj.vertex_groups.remove(mesh_obj.vertex_groups[kept])


def plan_weights(
    context: bpy.types.Context,
    obj: bpy.types.Object | None,
    *,
    method: str = BUNDLE_METHOD,
    params: dict | None = None,
    k: int | None = None,
) -> WeightsPlan | Recomputed:
    """Read what Recompute Weights needs from the scene; see `recompute_weights` for the arguments.
    `BONE_HEAT` runs here (Blender's own operator, on the main thread) and returns its `Recomputed`."""
    armature_obj, mesh_obj = find_rig(obj)
    if context.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    own_method, own_params, own_k = rig_skinning(armature_obj)
    k = own_k if k is None else int(k)
    if method == BONE_HEAT:
        if params:
            raise SkinningError(f"Blender's automatic weights take no parameters, got {', '.join(params)}")
        unweighted = bone_heat_weights(context, armature_obj, mesh_obj, k)
        names = [b.name for b in armature_obj.data.bones if b.use_deform]
        return Recomputed("bone heat", {}, k, names, unweighted)
    if method == BUNDLE_METHOD:
        method = own_method
    base = own_params if method == own_method else {}
    typed = method_params(method, params or {}, strict=True)  # a misspelt name is refused, not ignored
    kwargs = skin_kwargs(method, {**method_parameters(method), **base, **typed})
    relative = bool(kwargs.get("relative", True))  # an absolute sigma (scene units) only has to be positive
    for name, value in kwargs.items():  # refused here, before the solve starts on its thread
        if (problem := parameter_problem(name, value, relative=relative)) is not None:
            raise SkinningError(f"the skinning parameter {name} must be {problem}, got {value!r}")
    to_armature = np.linalg.inv(np.array(armature_obj.matrix_world, np.float64))
    vertices, triangles = mesh_arrays(mesh_obj, to_armature)
    return WeightsPlan(
        mesh_obj.session_uid,
        mesh_obj.name,
        len(mesh_obj.data.vertices),
        method,
        kwargs,
        k,
        vertices,
        triangles,
        rest_bones(armature_obj),
    )


def recompute_weights(
    context: bpy.types.Context,
    obj: bpy.types.Object | None,
    *,
    method: str = BUNDLE_METHOD,
    params: dict | None = None,
    k: int | None = None,
    progress=None,
) -> Recomputed:
    """Skin the rig's mesh to its deform bones and replace those bones' vertex groups, blocking
    (scripts, tests; the button solves on a thread: `plan_weights`). Groups of non-deform bones and
    unrelated groups are left alone; an exception (e.g. `progress` cancelling) changes nothing.

    method: a rigcore method (`METHODS`), `BUNDLE_METHOD` (the rig's own method and parameters, the
        default) or `BONE_HEAT` (Blender's automatic weights, limited to k and normalised).
    params: that method's parameters (see `skin_methods.method_parameters`; an unknown name raises
        `SkinningError`); missing ones take the rig's own values when it is the rig's method, else
        the method's defaults.
    k: influences per vertex (default: the rig's own)."""
    plan = plan_weights(context, obj, method=method, params=params, k=k)
    if isinstance(plan, Recomputed):
        return plan
    return plan.apply(context, plan.solve(progress))


def bone_heat_weights(
    context: bpy.types.Context, armature_obj: bpy.types.Object, mesh_obj: bpy.types.Object, k: int
) -> int:
    """Blender's automatic weights for the deform bones (as Parent > With Automatic Weights, keeping
    the mesh where it is), then at most `k` influences, normalised. Returns how many vertices bone
    heat left without weight (it fails silently on some meshes: disconnected parts, tiny scales)."""
    selected, active = list(context.view_layer.objects.selected), context.view_layer.objects.active
    try:
        for other in selected:
            other.select_set(False)
        mesh_obj.select_set(True)
        armature_obj.select_set(True)
        context.view_layer.objects.active = armature_obj
        objects = [mesh_obj, armature_obj]
        with context.temp_override(
            active_object=armature_obj, object=armature_obj, selected_objects=objects, selected_editable_objects=objects
        ):
            bpy.ops.object.parent_set("EXEC_DEFAULT", False, type="ARMATURE_AUTO", keep_transform=True)
    finally:
        for other in context.view_layer.objects.selected:
            other.select_set(False)
        for other in selected:
            other.select_set(True)
        context.view_layer.objects.active = active
    deform = {b.name for b in armature_obj.data.bones if b.use_deform}
    limit_influences(context, mesh_obj, k, deform)
    indices = {g.index for g in mesh_obj.vertex_groups if g.name in deform}
    return sum(1 for v in mesh_obj.data.vertices if sum(g.weight for g in v.groups if g.group in indices) <= 0.0)


def limit_influences(context: bpy.types.Context, mesh_obj: bpy.types.Object, limit: int, bone_names: set[str]) -> None:
    """At most `limit` bone weights per vertex, bone weights normalised (Blender's own operators)."""
    if not any(group.name in bone_names for group in mesh_obj.vertex_groups):
        raise RigNotFound(f"the mesh {mesh_obj.name!r} has no vertex groups for the armature's bones")
    objects = [mesh_obj]
    with context.temp_override(
        object=mesh_obj, active_object=mesh_obj, selected_objects=objects, selected_editable_objects=objects
    ):
        bpy.ops.object.vertex_group_limit_total("EXEC_DEFAULT", False, group_select_mode="BONE_DEFORM", limit=limit)
        bpy.ops.object.vertex_group_normalize_all(
            "EXEC_DEFAULT", False, group_select_mode="BONE_DEFORM", lock_active=False
        )
