# SPDX-License-Identifier: GPL-3.0-or-later
"""Export a rig to a game engine (FBX or binary glTF) with an export preset (unity/unreal/godot).

One function, `export_rig`, used by the add-on's Export operator and by `keydiff3d export`.
Engine rules it enforces (presets/*.toml, kind "export"): no leaf bones, deform bones only (a
non-deform root bone is kept because it parents deform bones), scale applied, at most
`max_influences` normalised weights per vertex, the armature object named as the engine expects
("Armature" lets Unreal skip its extra root). The scene is left as it was, except for the optional
root bone and the influence limit, which are real edits of the rig (one undo step in the operator).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import bpy

from .importer import ensure_root_bone
from .preset_choices import ExportPreset, export_preset
from .weights import find_rig

FORMATS = {"fbx": ".fbx", "glb": ".glb"}


class RigExportError(RuntimeError):
    """The rig could not be exported (one sentence)."""


@dataclass
class ExportResult:
    path: Path
    format: str
    preset: str
    bones: list[str]  # bones written (deform bones + non-deform ancestors when deform-only)


def _deformed_meshes(armature_obj: bpy.types.Object) -> list[bpy.types.Object]:
    return [
        obj
        for obj in bpy.data.objects
        if obj.type == "MESH" and any(m.type == "ARMATURE" and m.object == armature_obj for m in obj.modifiers)
    ]


def limit_influences(context: bpy.types.Context, mesh_obj: bpy.types.Object, limit: int, bone_names: set[str]) -> None:
    """At most `limit` bone weights per vertex, bone weights normalised (Blender's own operators)."""
    if not any(group.name in bone_names for group in mesh_obj.vertex_groups):
        raise RigExportError(f"the mesh {mesh_obj.name!r} has no vertex groups for the armature's bones")
    with context.temp_override(object=mesh_obj, active_object=mesh_obj, selected_objects=[mesh_obj], selected_editable_objects=[mesh_obj]):
        bpy.ops.object.vertex_group_limit_total("EXEC_DEFAULT", False, group_select_mode="BONE_DEFORM", limit=limit)
        bpy.ops.object.vertex_group_normalize_all("EXEC_DEFAULT", False, group_select_mode="BONE_DEFORM", lock_active=False)


@contextmanager
def _temporary_name(obj: bpy.types.Object, name: str):
    """Give `obj` the exact name `name` while exporting (swapping with an object holding it)."""
    original = obj.name
    holder = bpy.data.objects.get(name)
    if holder is not None and holder != obj:
        holder.name = f"{name}__keydiff3d_tmp"
    obj.name = name
    try:
        yield
    finally:
        obj.name = original
        if holder is not None and holder != obj:
            holder.name = name


@contextmanager
def _only_selected(context: bpy.types.Context, objects: list[bpy.types.Object]):
    view_layer = context.view_layer
    selected = list(view_layer.objects.selected)
    active = view_layer.objects.active
    for obj in selected:
        obj.select_set(False)
    for obj in objects:
        obj.select_set(True)
    view_layer.objects.active = objects[0]
    try:
        yield
    finally:
        for obj in objects:
            obj.select_set(False)
        for obj in selected:
            obj.select_set(True)
        view_layer.objects.active = active


def _exported_bones(armature_obj: bpy.types.Object, deform_only: bool) -> list[str]:
    if not deform_only:
        return [b.name for b in armature_obj.data.bones]
    keep = {b.name for b in armature_obj.data.bones if b.use_deform}
    for bone in armature_obj.data.bones:
        if bone.use_deform:
            keep.update(parent.name for parent in bone.parent_recursive)
    return [b.name for b in armature_obj.data.bones if b.name in keep]


def _write_fbx(path: Path, preset: ExportPreset, animated: bool) -> None:
    bpy.ops.export_scene.fbx(
        filepath=str(path),
        use_selection=True,
        object_types={"ARMATURE", "MESH"},
        axis_forward=preset.axis_forward,
        axis_up=preset.axis_up,
        global_scale=preset.global_scale,
        apply_unit_scale=preset.apply_unit_scale,
        apply_scale_options=preset.apply_scale_options,
        bake_space_transform=preset.bake_space_transform,
        add_leaf_bones=preset.add_leaf_bones,
        use_armature_deform_only=preset.use_armature_deform_only,
        primary_bone_axis=preset.primary_bone_axis,
        secondary_bone_axis=preset.secondary_bone_axis,
        armature_nodetype="NULL",
        mesh_smooth_type="FACE",
        bake_anim=animated,
    )


@contextmanager
def _deforming_ancestors(armature_obj: bpy.types.Object, bone_names: list[str]):
    """Mark the non-deform bones in `bone_names` (ancestors of deform bones, e.g. the root) as
    deforming while exporting: glTF's deform-only option would drop them and break the hierarchy,
    where FBX's keeps them. They have no vertex group, so they get no weights either way."""
    bones = [armature_obj.data.bones[name] for name in bone_names if not armature_obj.data.bones[name].use_deform]
    for bone in bones:
        bone.use_deform = True
    try:
        yield
    finally:
        for bone in bones:
            bone.use_deform = False


def _write_glb(path: Path, preset: ExportPreset, animated: bool) -> None:
    bpy.ops.export_scene.gltf(
        filepath=str(path),
        export_format="GLB",
        use_selection=True,
        export_yup=True,  # glTF is y-up by its spec
        export_apply=False,  # applying modifiers would bake the Armature modifier's pose
        export_skins=True,
        export_influence_nb=preset.max_influences,
        export_def_bones=preset.use_armature_deform_only,
        export_animations=animated,
    )


def _prepare_and_write(context, armature_obj, meshes, path: Path, preset: ExportPreset, fmt: str, root_bone: bool | None) -> list[str]:
    """Root bone and influence limit (real edits), then the write under temporary name/selection."""
    if context.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    if root_bone if root_bone is not None else preset.root_bone:
        ensure_root_bone(context, armature_obj)
    deform_names = {b.name for b in armature_obj.data.bones if b.use_deform}
    for mesh_obj in meshes:
        limit_influences(context, mesh_obj, preset.max_influences, deform_names)
    path.parent.mkdir(parents=True, exist_ok=True)
    animated = bool(armature_obj.animation_data and armature_obj.animation_data.action)
    bones = _exported_bones(armature_obj, preset.use_armature_deform_only)
    with _temporary_name(armature_obj, preset.armature_name), _only_selected(context, [armature_obj, *meshes]):
        if fmt == "fbx":
            _write_fbx(path, preset, animated)
        else:
            with _deforming_ancestors(armature_obj, bones if preset.use_armature_deform_only else []):
                _write_glb(path, preset, animated)
    return bones


def export_rig(
    context: bpy.types.Context,
    obj: bpy.types.Object,
    filepath: str | Path,
    *,
    preset: str | ExportPreset = "unity",
    fmt: str | None = None,
    root_bone: bool | None = None,
) -> ExportResult:
    """Export the rig of `obj` (its armature or deformed mesh) to `filepath`.

    fmt: "fbx" or "glb"; default from the file suffix, else the preset's format.
    root_bone: add a non-deforming root bone at the origin if missing; default = the preset's choice.
    """
    preset = export_preset(preset) if isinstance(preset, str) else preset
    path = Path(bpy.path.abspath(str(filepath)))
    fmt = (fmt or {v: k for k, v in FORMATS.items()}.get(path.suffix.lower()) or preset.format).lower()
    if fmt not in FORMATS:
        raise RigExportError(f"unknown export format {fmt!r}; choose fbx or glb")
    if path.suffix.lower() != FORMATS[fmt]:
        path = path.with_suffix(FORMATS[fmt])
    try:
        armature_obj, _ = find_rig(obj)
    except RuntimeError as error:
        raise RigExportError(str(error)) from error
    meshes = _deformed_meshes(armature_obj)
    try:
        bones = _prepare_and_write(context, armature_obj, meshes, path, preset, fmt, root_bone)
    except RigExportError:
        raise
    except (RuntimeError, ValueError, TypeError) as error:  # a bpy operator refused (hidden object, ...)
        raise RigExportError(f"exporting {armature_obj.name!r} failed: {error}") from error
    if not path.is_file():
        raise RigExportError(f"Blender's {fmt.upper()} exporter did not write {path}")
    return ExportResult(path=path, format=fmt, preset=preset.name, bones=bones)
