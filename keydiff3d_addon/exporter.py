# SPDX-License-Identifier: GPL-3.0-or-later
"""Export a rig to a game engine (FBX or binary glTF) with an export preset (unity/unreal/godot).

One function, `export_rig`, used by the add-on's Export operator and by `keydiff3d export`. It writes
temporary copies of the rig's armature and meshes (`_export_copies`), so the scene is left exactly as
it was (objects, names, bones, pose, weights, selection, mode), and prepares only the copies:

- the rest pose is written (FBX and glTF alike), not the current pose, unless the armature is animated;
- an optional non-deforming root bone at the origin (the preset's `root_bone`);
- at most `max_influences` normalised bone weights per vertex;
- FBX with `bake_space_transform`: the axis conversion is baked into the armature data too (Blender's
  exporter bakes it into meshes only), so no node of the file carries a rotation;
- glTF in a scene whose unit scale is not 1: the copies are scaled to metres (glTF's unit; Blender's
  glTF exporter ignores the unit scale). FBX keeps Blender units and declares them (`UnitScaleFactor`);
- the armature object carries the name the engine expects ("Armature": Unreal then adds no root).
docs/EXPORT.md says what each engine receives; tests/test_addon_export_engines.py reads the files back
with readers that are not Blender (ufbx, pygltflib).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import bpy
from bpy_extras.io_utils import axis_conversion
from mathutils import Matrix

from .importer import ensure_root_bone
from .preset_choices import ExportPreset, default_export, export_preset
from .weights import find_rig, limit_influences

FORMATS = {"fbx": ".fbx", "glb": ".glb"}
_ASIDE = ".keydiff3d_export"  # suffix of a name lent to an export copy for the duration of the export


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


@contextmanager
def _kept_mode_and_selection(context: bpy.types.Context):
    """Object mode meanwhile; afterwards the same active object, selection and mode (Pose, Edit...) as before."""
    view_layer = context.view_layer
    active, selected = view_layer.objects.active, list(view_layer.objects.selected)
    mode = active.mode if active is not None else "OBJECT"
    if context.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    try:
        yield
    finally:
        for obj in view_layer.objects:
            obj.select_set(obj in selected)
        view_layer.objects.active = active
        if active is not None and mode != "OBJECT":
            bpy.ops.object.mode_set(mode=mode)


class _Names:
    """Lends names to export copies: the holder of a name is renamed aside and gets it back later."""

    def __init__(self) -> None:
        self._lent: list[tuple[bpy.types.ID, str]] = []

    def give(self, collection, block: bpy.types.ID, name: str) -> None:
        holder = collection.get(name)
        if holder is not None and holder != block:
            self._lent.append((holder, name))
            holder.name = name + _ASIDE
        block.name = name
        if block.name != name:
            raise RigExportError(f"could not give the export copy the name {name!r} (Blender made it {block.name!r})")

    def give_back(self) -> None:
        for holder, name in reversed(self._lent):
            holder.name = name
        self._lent.clear()


@contextmanager
def _export_copies(
    context: bpy.types.Context, armature_obj: bpy.types.Object, meshes: list[bpy.types.Object], armature_name: str
):
    """(armature copy, mesh copies) in a temporary collection, with their own data and the names the
    file must carry (the originals are renamed aside meanwhile); all removed afterwards."""
    collection = bpy.data.collections.new("KeyDiff3D export")
    context.scene.collection.children.link(collection)
    names, made = _Names(), []

    def keep(block):
        made.append(block)
        return block

    try:
        arm_copy = keep(armature_obj.copy())
        arm_copy.data = keep(armature_obj.data.copy())
        collection.objects.link(arm_copy)
        mesh_copies = []
        for mesh_obj in meshes:
            copy = keep(mesh_obj.copy())
            copy.data = keep(mesh_obj.data.copy())
            if mesh_obj.parent == armature_obj:
                copy.parent = arm_copy  # the copied parent inverse still applies
            for modifier in copy.modifiers:
                if modifier.type == "ARMATURE" and modifier.object == armature_obj:
                    modifier.object = arm_copy
            collection.objects.link(copy)
            mesh_copies.append(copy)
        names.give(bpy.data.objects, arm_copy, armature_name)
        names.give(bpy.data.armatures, arm_copy.data, armature_obj.data.name)
        for mesh_obj, copy in zip(meshes, mesh_copies):
            names.give(bpy.data.objects, copy, mesh_obj.name)
            names.give(bpy.data.meshes, copy.data, mesh_obj.data.name)
        yield arm_copy, mesh_copies
    finally:
        bpy.data.batch_remove([block for block in made if isinstance(block, bpy.types.Object)])
        bpy.data.batch_remove([block for block in made if not isinstance(block, bpy.types.Object)] + [collection])
        names.give_back()
        context.view_layer.update()  # resync the view layer's objects with what was removed


def _exported_bones(armature_obj: bpy.types.Object, deform_only: bool) -> list[str]:
    if not deform_only:
        return [b.name for b in armature_obj.data.bones]
    keep = {b.name for b in armature_obj.data.bones if b.use_deform}
    for bone in armature_obj.data.bones:
        if bone.use_deform:
            keep.update(parent.name for parent in bone.parent_recursive)
    return [b.name for b in armature_obj.data.bones if b.name in keep]


def _remap(
    arm_copy: bpy.types.Object, mesh_copies: list[bpy.types.Object], data: Matrix, place, mesh_data: bool
) -> None:
    """Armature data (and, with `mesh_data`, mesh data) <- `data` @ data; each copy's world matrix
    <- place(its world matrix). Meshes are placed after the armature, whose move they would follow."""
    worlds = [copy.matrix_world.copy() for copy in mesh_copies]
    arm_copy.data.transform(data)
    arm_copy.update_tag(refresh={"DATA"})  # Armature.transform does not tag the pose for re-evaluation
    arm_copy.matrix_world = place(arm_copy.matrix_world.copy())
    for copy, world in zip(mesh_copies, worlds):
        if mesh_data:
            copy.data.transform(data, shape_keys=True)
            copy.data.update()
        copy.matrix_world = place(world) if mesh_data else world


def bake_axis_conversion(arm_copy: bpy.types.Object, mesh_copies: list[bpy.types.Object], conversion: Matrix) -> None:
    """What FBX's bake_space_transform does for meshes, done for the armature: its bones become
    `conversion` @ bones and its object `world @ conversion^-1`, so the exporter's `conversion @ world`
    is the plain world placement in the target axes (identity for a rig at the origin), not a rotation."""
    _remap(arm_copy, mesh_copies, conversion, lambda world: world @ conversion.inverted(), mesh_data=False)


def scale_to_metres(arm_copy: bpy.types.Object, mesh_copies: list[bpy.types.Object], metres_per_unit: float) -> None:
    """The rig scaled about the origin into its data (objects keep scale 1): for glTF, whose unit is the metre."""
    scale = Matrix.Scale(metres_per_unit, 4)
    _remap(arm_copy, mesh_copies, scale, lambda world: scale @ world @ scale.inverted(), mesh_data=True)


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
        bake_space_transform=preset.bake_space_transform,  # meshes; the armature: bake_axis_conversion
        add_leaf_bones=preset.add_leaf_bones,
        use_armature_deform_only=preset.use_armature_deform_only,
        primary_bone_axis=preset.primary_bone_axis,
        secondary_bone_axis=preset.secondary_bone_axis,
        armature_nodetype="NULL",
        mesh_smooth_type="FACE",
        bake_anim=animated,
    )


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


def _prepare(
    context, arm_copy, mesh_copies, preset: ExportPreset, fmt: str, root_bone: bool, animated: bool
) -> list[str]:
    """Everything the engine needs, done to the copies; returns the bones the file will hold."""
    if not animated:
        arm_copy.data.pose_position = "REST"  # the file's node transforms are the bind pose
    if root_bone:
        ensure_root_bone(context, arm_copy)
    deform_names = {b.name for b in arm_copy.data.bones if b.use_deform}
    for copy in mesh_copies:
        limit_influences(context, copy, preset.max_influences, deform_names)
    bones = _exported_bones(arm_copy, preset.use_armature_deform_only)
    if fmt == "fbx" and preset.bake_space_transform:
        conversion = axis_conversion(to_forward=preset.axis_forward, to_up=preset.axis_up).to_4x4()
        bake_axis_conversion(arm_copy, mesh_copies, conversion)  # the exporter bakes the meshes
    if fmt == "glb":
        units = context.scene.unit_settings
        if units.system != "NONE" and units.scale_length != 1.0:
            scale_to_metres(arm_copy, mesh_copies, units.scale_length)
        if preset.use_armature_deform_only:
            # glTF's deform-only filter would drop non-deforming ancestors (the root) and break the
            # hierarchy, where FBX's keeps them; they have no vertex group, so they get no weights
            for name in bones:
                arm_copy.data.bones[name].use_deform = True
    context.view_layer.update()  # the copies' pose matrices, which the exporters read, follow their new data
    return bones


def export_rig(
    context: bpy.types.Context,
    obj: bpy.types.Object,
    filepath: str | Path,
    *,
    preset: str | ExportPreset | None = None,
    fmt: str | None = None,
    root_bone: bool | None = None,
) -> ExportResult:
    """Export the rig of `obj` (its armature or deformed mesh) to `filepath`; the scene is unchanged.

    preset: an export preset or its name; default the preset marked `default = true` (unity).
    fmt: "fbx" or "glb"; default from the file suffix, else the preset's format.
    root_bone: add a non-deforming root bone at the origin if missing; default = the preset's choice.
    """
    preset = export_preset(preset or default_export()) if not isinstance(preset, ExportPreset) else preset
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
    animated = bool(armature_obj.animation_data and armature_obj.animation_data.action)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (
            _kept_mode_and_selection(context),
            _export_copies(context, armature_obj, meshes, preset.armature_name) as copies,
        ):
            arm_copy, mesh_copies = copies
            wanted_root = root_bone if root_bone is not None else preset.root_bone
            bones = _prepare(context, arm_copy, mesh_copies, preset, fmt, wanted_root, animated)
            for other in context.view_layer.objects:
                other.select_set(other == arm_copy or other in mesh_copies)
            context.view_layer.objects.active = arm_copy
            (_write_fbx if fmt == "fbx" else _write_glb)(path, preset, animated)
    except RigExportError:
        raise
    except (RuntimeError, ValueError, TypeError) as error:  # a bpy operator refused (hidden object, ...)
        raise RigExportError(f"exporting {armature_obj.name!r} failed: {error}") from error
    if not path.is_file():
        raise RigExportError(f"Blender's {fmt.upper()} exporter did not write {path}")
    return ExportResult(path=path, format=fmt, preset=preset.name, bones=bones)
