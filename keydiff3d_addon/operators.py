# SPDX-License-Identifier: GPL-3.0-or-later
"""Operators of the KeyDiff3D sidebar (the backend job operators live in `remote.py`). Each is a
thin shell over a plain function (`importer.import_bundle`, `weights.recompute_weights`,
`exporter.export_rig`, `health.check_backend`) so the same code runs in tests and in
`keydiff3d export`; `selected_image_path` is shared with `remote.py`."""

from pathlib import Path

import bpy
from bpy_extras.io_utils import ExportHelper, ImportHelper

from . import preset_choices
from .exporter import FORMATS, RigExportError, export_rig
from .health import BackendUnreachable, check_backend
from .importer import RigImportError, import_bundle
from .preferences import allowed_backend_url, get_preferences
from .rigcore.presets import PresetError
from .rigcore.skinning import METHODS, SkinningError
from .weights import RigNotFound, recompute_weights



class WindowProgress:
    """`update(fraction, message)` shown on Blender's progress cursor (status bar) while a blocking
    step runs; the duck type the importer and rigcore's skinning accept."""

    def __init__(self, context: bpy.types.Context) -> None:
        self.window_manager = context.window_manager

    def __enter__(self) -> "WindowProgress":
        self.window_manager.progress_begin(0, 100)
        return self

    def __exit__(self, *exc) -> None:
        self.window_manager.progress_end()

    def update(self, fraction: float, message: str = "") -> None:
        self.window_manager.progress_update(100.0 * min(max(fraction, 0.0), 1.0))


def selected_image_path(context: bpy.types.Context) -> Path:
    """The image file chosen in the sidebar (a path, or the file behind an image loaded in Blender)."""
    settings = context.scene.keydiff3d
    if settings.image_source == "LOADED":
        image = settings.image
        if image is None:
            raise ValueError("choose an image loaded in Blender, or switch the image source to File")
        raw = image.filepath_from_user() if image.filepath else ""
        if not raw or not Path(bpy.path.abspath(raw)).is_file():
            raise ValueError(f"the image {image.name!r} has no file on disk; save it first or pick a file")
        return Path(bpy.path.abspath(raw))
    if not settings.image_path:
        raise ValueError("choose an image file first")
    path = Path(bpy.path.abspath(settings.image_path))
    if not path.is_file():
        raise ValueError(f"the image file {path} does not exist")
    return path


def backend_health_message(context: bpy.types.Context) -> str:
    """One sentence about the configured backend; raises `BackendUnreachable` when there is none."""
    url = allowed_backend_url(context)
    prefs = get_preferences(context)
    health = check_backend(url, token=prefs.token, start_command=prefs.start_command)
    return f"KeyDiff3D backend at {health.url} is {health.status} (device {health.device})."


class KEYDIFF3D_OT_check_backend(bpy.types.Operator):
    """Check that the KeyDiff3D backend set in the add-on preferences answers"""

    bl_idname = "keydiff3d.check_backend"
    bl_label = "Check Backend"
    bl_options = {"REGISTER"}

    def execute(self, context):
        try:
            message = backend_health_message(context)
        except (BackendUnreachable, RuntimeError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, message)
        return {"FINISHED"}


class KEYDIFF3D_OT_import_bundle(bpy.types.Operator, ImportHelper):
    """Import a KeyDiff3D rig bundle (rig.json or a .zip) as a mesh with an armature"""

    bl_idname = "keydiff3d.import_bundle"
    bl_label = "Import Rig Bundle"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".json"
    filter_glob: bpy.props.StringProperty(default="*.json;*.zip", options={"HIDDEN"})
    target_height: bpy.props.FloatProperty(
        name="Target height", default=1.0, min=0.0, unit="LENGTH",
        description="Height in Blender units (0 keeps the bundle's own scale and position)",
    )  # fmt: skip
    keypoint_empties: bpy.props.BoolProperty(name="Keypoint empties", default=False)
    root_bone: bpy.props.BoolProperty(name="Root bone", default=False, description="Add a non-deforming root bone at the origin")

    def invoke(self, context, event):
        settings = context.scene.keydiff3d
        self.target_height = settings.target_height
        self.keypoint_empties = settings.keypoint_empties
        return ImportHelper.invoke(self, context, event)

    def execute(self, context):
        try:
            with WindowProgress(context) as progress:
                rig = import_bundle(
                    self.filepath,
                    context=context,
                    target_height=self.target_height,
                    keypoint_empties=self.keypoint_empties,
                    root_bone=self.root_bone,
                    progress=progress,
                )
        except RigImportError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        bones = len(rig.armature.data.bones)
        seconds = sum(rig.timings.values())
        self.report({"INFO"}, f"Imported {rig.armature.name}: {bones} bones, {len(rig.mesh.data.vertices)} vertices in {seconds:.2f} s")
        return {"FINISHED"}


class KEYDIFF3D_OT_recompute_weights(bpy.types.Operator):
    """Recompute the rig's skinning weights from its current bones (Gaussian distance, in Blender)"""

    bl_idname = "keydiff3d.recompute_weights"
    bl_label = "Recompute Weights"
    bl_options = {"REGISTER", "UNDO"}

    method: bpy.props.EnumProperty(name="Method", items=[(m, m.replace("_", " ").title(), "") for m in METHODS])
    sigma: bpy.props.FloatProperty(name="Sigma", default=0.08, min=1e-4, soft_max=0.5)
    k: bpy.props.IntProperty(name="Influences", default=4, min=1, max=4)

    @classmethod
    def poll(cls, context):
        return context.active_object is not None and context.active_object.type in {"MESH", "ARMATURE"}

    def invoke(self, context, event):
        settings = context.scene.keydiff3d
        self.method, self.sigma, self.k = settings.skin_method, settings.skin_sigma, settings.skin_k
        return self.execute(context)

    def execute(self, context):
        try:
            with WindowProgress(context) as progress:
                skin = recompute_weights(
                    context, context.active_object, sigma=self.sigma, k=self.k, method=self.method, progress=progress
                )
        except (RigNotFound, SkinningError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Recomputed weights for {len(skin.bone_names)} bones ({self.method}, sigma {self.sigma:g}, k {self.k})")
        return {"FINISHED"}


class KEYDIFF3D_OT_export_rig(bpy.types.Operator, ExportHelper):
    """Export the active rig for a game engine (FBX or glTF) with an engine preset"""

    bl_idname = "keydiff3d.export_rig"
    bl_label = "Export Rig"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".fbx"
    filter_glob: bpy.props.StringProperty(default="*.fbx;*.glb", options={"HIDDEN"})
    target: bpy.props.EnumProperty(name="Engine", items=preset_choices.export_enum_items)
    export_format: bpy.props.EnumProperty(name="Format", items=[("FBX", "FBX", ""), ("GLB", "glTF (.glb)", "")])
    root_bone: bpy.props.BoolProperty(
        name="Root bone", default=False,
        description="Add a non-deforming root bone at the origin even when the engine preset does not ask for one",
    )  # fmt: skip

    @classmethod
    def poll(cls, context):
        return context.active_object is not None and context.active_object.type in {"MESH", "ARMATURE"}

    def invoke(self, context, event):
        settings = context.scene.keydiff3d
        self.target, self.export_format, self.root_bone = settings.export_target, settings.export_format, settings.export_root_bone
        self.filename_ext = FORMATS[self.export_format.lower()]
        return ExportHelper.invoke(self, context, event)

    def check(self, context):
        self.filename_ext = FORMATS[self.export_format.lower()]
        return ExportHelper.check(self, context)

    def execute(self, context):
        try:
            result = export_rig(
                context, context.active_object, self.filepath,
                preset=self.target, fmt=self.export_format.lower(), root_bone=True if self.root_bone else None,
            )  # fmt: skip
        except (RigExportError, PresetError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Exported {len(result.bones)} bones to {result.path} ({result.preset})")
        return {"FINISHED"}


CLASSES = (
    KEYDIFF3D_OT_check_backend,
    KEYDIFF3D_OT_import_bundle,
    KEYDIFF3D_OT_recompute_weights,
    KEYDIFF3D_OT_export_rig,
)
