# SPDX-License-Identifier: GPL-3.0-or-later
"""Operators that work without the backend: Import Rig Bundle, Recompute Weights, Export Rig. Each is
a thin shell over a plain function (`importer.import_bundle`, `weights.plan_weights` /
`recompute_weights`, `exporter.export_rig`) so the same code runs in tests and in `keydiff3d export`.
Import and Recompute change the scene as one undo step; Export leaves it exactly as it was, so it
is no undo step. Recompute Weights' button solves on a worker thread (`background.BackgroundTask`)
while a modal timer shows its progress; Esc cancels and the previous weights stay. A button that
cannot run says why (`poll_message_set`). The backend's operators are in `backend_operators.py`."""

import json
import logging

import bpy
from bpy_extras.io_utils import ExportHelper, ImportHelper

from . import preset_choices
from .background import BackgroundTask, Cancelled, WindowProgress
from .exporter import FORMATS, RigExportError, export_rig
from .importer import RigImportError, import_bundle
from .modal import show_progress, start_watching, stop_watching
from .properties import SKIN_METHOD_ITEMS, skin_params
from .rigcore.presets import PresetError
from .rigcore.skinning import MAX_INFLUENCES, SkinningError
from .weights import BUNDLE_METHOD, Recomputed, RigNotFound, WeightsPlan, find_rig, plan_weights


def rig_poll(cls, context) -> bool:
    """Poll of operators that need a selected rig; the reason is shown on the greyed-out button."""
    try:
        find_rig(context.active_object)
    except RigNotFound as error:
        cls.poll_message_set(f"Select a rig first: {error}")
        return False
    return True


class KEYDIFF3D_OT_import_bundle(bpy.types.Operator, ImportHelper):
    """Import a KeyDiff3D rig bundle (rig.json or a .zip) as a mesh with an armature"""

    bl_idname = "keydiff3d.import_bundle"
    bl_label = "Import Rig Bundle"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".json"
    filter_glob: bpy.props.StringProperty(default="*.json;*.zip", options={"HIDDEN"})
    target_height: bpy.props.FloatProperty(
        name="Target height (m)",
        default=1.0,
        min=0.0,
        description="Height in metres, whatever the scene's unit scale (0 keeps the bundle's coordinates)",
    )
    keypoint_empties: bpy.props.BoolProperty(name="Keypoint empties", default=False)
    root_bone: bpy.props.BoolProperty(
        name="Root bone", default=False, description="Add a non-deforming root bone at the origin"
    )

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
        self.report(
            {"INFO"},
            f"Imported {rig.armature.name}: {bones} bones, {len(rig.mesh.data.vertices)} vertices in {seconds:.2f} s",
        )
        return {"FINISHED"}


def recompute_arguments(settings) -> dict:
    """The Weights panel's choice as the operator's properties (what the button runs)."""
    own = settings.skin_method == BUNDLE_METHOD
    return {
        "method": settings.skin_method,
        "params": json.dumps(skin_params(settings)) if settings.skin_params else "",
        "k": 0 if own else settings.skin_k,
    }


_log = logging.getLogger(__name__)
_weights_task: BackgroundTask | None = None  # the solve of the Recompute Weights running now


def recompute_report(result: Recomputed) -> list[tuple[str, str]]:
    """The operator's reports for a finished recompute."""
    reports = [("INFO", f"Recomputed weights for {len(result.bone_names)} bones ({result.describe()})")]
    if result.unweighted:
        reports.append(("WARNING", f"Blender's automatic weights left {result.unweighted} vertices without weight"))
    return reports


def finish_weights_task(context: bpy.types.Context, plan: WeightsPlan, task: BackgroundTask) -> list[tuple[str, str]]:
    """Main thread, once `task` (plan.solve on a thread) finished: write the groups, or change nothing
    when it was cancelled or failed. Returns the reports; the first one's level decides the outcome."""
    try:
        return recompute_report(plan.apply(context, task.result()))
    except Cancelled:
        return [("WARNING", "Recompute Weights was cancelled; the weights were left as they were")]
    except (RigNotFound, SkinningError, RigImportError) as error:
        return [("ERROR", str(error))]
    except Exception as error:
        # a bug or an exhausted machine (MemoryError, LinAlgError): one sentence, not a traceback
        _log.exception("Recompute Weights failed")
        return [
            ("ERROR", f"Recompute Weights failed ({type(error).__name__}: {error}); the weights were left as they were")
        ]


def stop_weights_task(context: bpy.types.Context, task: BackgroundTask, timer) -> None:
    """End a running Recompute Weights' modal state: cancel its solve (a finished one is unaffected),
    remove its timer, end the progress cursor and clear the status text."""
    task.cancel()
    stop_watching(context, timer)


class KEYDIFF3D_OT_recompute_weights(bpy.types.Operator):
    """Recompute the rig's skin weights from its current bones: its own method, another rigcore method \
or Blender's automatic weights (Esc cancels)"""

    bl_idname = "keydiff3d.recompute_weights"
    bl_label = "Recompute Weights"
    bl_options = {"REGISTER", "UNDO"}

    method: bpy.props.EnumProperty(name="Method", items=SKIN_METHOD_ITEMS, default=BUNDLE_METHOD)
    params: bpy.props.StringProperty(
        name="Parameters",
        default="",
        description=(
            "JSON object of the method's parameters; missing ones take the rig's own values or the method's defaults"
        ),
    )
    k: bpy.props.IntProperty(
        name="Influences", default=0, min=0, max=MAX_INFLUENCES, description="Bones per vertex (0: the rig's own)"
    )

    @classmethod
    def poll(cls, context):
        if _weights_task is not None and not _weights_task.finished:
            cls.poll_message_set("Recompute Weights is running (Esc cancels it)")
            return False
        return rig_poll(cls, context)

    def invoke(self, context, event):
        """The button: the solve runs on a thread while Blender stays responsive; Esc cancels."""
        for name, value in recompute_arguments(context.scene.keydiff3d).items():
            setattr(self, name, value)
        return self._run(context, background=True)

    def execute(self, context):
        """Scripts and the redo panel: blocking, with the progress cursor."""
        return self._run(context, background=False)

    def _run(self, context, background: bool) -> set[str]:
        global _weights_task
        try:
            params = json.loads(self.params) if self.params.strip() else None
            if params is not None and not isinstance(params, dict):
                raise ValueError("not an object")
        except ValueError as error:
            self.report({"ERROR"}, f'the weight parameters must be a JSON object such as {{"sigma": 0.1}} ({error})')
            return {"CANCELLED"}
        try:
            plan = plan_weights(context, context.active_object, method=self.method, params=params, k=self.k or None)
            if isinstance(plan, Recomputed):  # Blender's automatic weights ran already
                return self._end(recompute_report(plan))
            if not background:
                with WindowProgress(context) as progress:
                    return self._end(recompute_report(plan.apply(context, plan.solve(progress))))
        except (RigNotFound, SkinningError, RigImportError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self._plan = plan
        self._task = _weights_task = BackgroundTask(plan.solve, name="keydiff3d-weights").start()
        self._timer = start_watching(self, context)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            self._task.cancel()  # the solve stops at its next progress report
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        fraction, stage = self._task.progress.fraction, self._task.progress.message or "skinning"
        show_progress(context, fraction, f"KeyDiff3D: {stage} - {100 * fraction:.0f}% (Esc cancels)")
        if not self._task.finished:
            return {"PASS_THROUGH"}
        stop_weights_task(context, self._task, self._timer)
        return self._end(finish_weights_task(context, self._plan, self._task))

    def cancel(self, context):
        """Blender ends the modal (a file is loaded, the window closes): the solve stops, nothing changes."""
        stop_weights_task(context, self._task, self._timer)

    def _end(self, reports: list[tuple[str, str]]) -> set[str]:
        for level, message in reports:
            self.report({level}, message)
        return {"FINISHED"} if reports[0][0] == "INFO" else {"CANCELLED"}


EXPORT_FORMAT_ITEMS = [
    ("PRESET", "Engine's format", "The format the engine preset prefers (or the file name's suffix)"),
    ("FBX", "FBX", "Autodesk FBX"),
    ("GLB", "glTF (.glb)", "Binary glTF 2.0"),
]


class KEYDIFF3D_OT_export_rig(bpy.types.Operator, ExportHelper):
    """Export the active rig for a game engine (FBX or glTF) with an engine preset; the scene is left as it was"""

    bl_idname = "keydiff3d.export_rig"
    bl_label = "Export Rig"
    bl_options = {"REGISTER"}  # no undo step: the scene is left exactly as it was (exporter.py)

    filename_ext = ".fbx"
    filter_glob: bpy.props.StringProperty(default="*.fbx;*.glb", options={"HIDDEN"})
    target: bpy.props.EnumProperty(
        name="Engine", items=preset_choices.export_enum_items, default=preset_choices.default_index("export")
    )
    export_format: bpy.props.EnumProperty(name="Format", items=EXPORT_FORMAT_ITEMS, default="PRESET")
    root_bone: bpy.props.BoolProperty(
        name="Root bone",
        default=False,
        description="Add a non-deforming root bone at the origin even when the engine preset does not ask for one",
    )

    poll = classmethod(rig_poll)

    def _format(self) -> str | None:
        if self.export_format != "PRESET":
            return self.export_format.lower()
        try:
            return preset_choices.export_preset(self.target).format
        except PresetError:
            return None

    def invoke(self, context, event):
        settings = context.scene.keydiff3d
        self.target, self.export_format, self.root_bone = (
            settings.export_target,
            settings.export_format,
            settings.export_root_bone,
        )
        self.filename_ext = FORMATS.get(self._format() or "fbx", ".fbx")
        return ExportHelper.invoke(self, context, event)

    def check(self, context):
        self.filename_ext = FORMATS.get(self._format() or "fbx", ".fbx")
        return ExportHelper.check(self, context)

    def execute(self, context):
        fmt = None if self.export_format == "PRESET" else self.export_format.lower()
        try:
            root_bone = True if self.root_bone else None
            result = export_rig(
                context, context.active_object, self.filepath, preset=self.target, fmt=fmt, root_bone=root_bone
            )
        except (RigExportError, PresetError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Exported {len(result.bones)} bones to {result.path} ({result.preset})")
        return {"FINISHED"}


CLASSES = (KEYDIFF3D_OT_import_bundle, KEYDIFF3D_OT_recompute_weights, KEYDIFF3D_OT_export_rig)
