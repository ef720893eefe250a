# SPDX-License-Identifier: GPL-3.0-or-later
"""The "KeyDiff3D" tab in the 3D Viewport sidebar: five panels side by side (Rig, Import, Weights,
Export, Backend), so collapsing one hides nothing else; and the models box of the preferences."""

from __future__ import annotations

import bpy

from . import remote
from .weights import BONE_HEAT, BUNDLE_METHOD, RigNotFound, find_rig, rig_skinning


class _KeyDiff3DPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "KeyDiff3D"


class KEYDIFF3D_PT_rig(_KeyDiff3DPanel, bpy.types.Panel):
    bl_idname = "KEYDIFF3D_PT_rig"
    bl_label = "Rig"
    bl_order = 0

    def draw(self, context):
        layout = self.layout
        settings = context.scene.keydiff3d
        layout.prop(settings, "image_source", expand=True)
        if settings.image_source == "FILE":
            layout.prop(settings, "image_path", text="")
        else:
            layout.template_ID(settings, "image", open="image.open")
        layout.prop(settings, "preset")
        layout.prop(settings, "target_height")
        layout.operator("keydiff3d.rig_image_remote", icon="ARMATURE_DATA")
        layout.operator("keydiff3d.rig_selected_mesh", icon="MESH_DATA")
        draw_job_status(layout)


class KEYDIFF3D_PT_import(_KeyDiff3DPanel, bpy.types.Panel):
    bl_idname = "KEYDIFF3D_PT_import"
    bl_label = "Import"
    bl_order = 1

    def draw(self, context):
        layout = self.layout
        layout.prop(context.scene.keydiff3d, "keypoint_empties")
        layout.operator("keydiff3d.import_bundle", icon="IMPORT")


class KEYDIFF3D_PT_weights(_KeyDiff3DPanel, bpy.types.Panel):
    bl_idname = "KEYDIFF3D_PT_weights"
    bl_label = "Weights"
    bl_order = 2

    def draw(self, context):
        layout = self.layout
        settings = context.scene.keydiff3d
        try:
            armature_obj, mesh_obj = find_rig(context.active_object)
            layout.label(text=f"{armature_obj.name} -> {mesh_obj.name}", icon="MOD_ARMATURE")
        except RigNotFound:
            armature_obj = None
        layout.prop(settings, "skin_method")
        if settings.skin_method == BUNDLE_METHOD:
            if armature_obj is not None:
                method, params, k = rig_skinning(armature_obj)
                values = ", ".join(f"{n} {v:g}" if isinstance(v, float) else f"{n} {v}" for n, v in params.items())
                layout.label(text=f"{method}: {values}, k {k}" if values else f"{method}, k {k}", icon="INFO")
        else:
            column = layout.column(align=True)
            for item in settings.skin_params:
                column.prop(item, item.name)
            layout.prop(settings, "skin_k")
            if settings.skin_method == BONE_HEAT:
                layout.label(text="Blender's bone heat: may leave parts unweighted", icon="INFO")
        layout.operator("keydiff3d.recompute_weights", icon="MOD_VERTEX_WEIGHT")


class KEYDIFF3D_PT_export(_KeyDiff3DPanel, bpy.types.Panel):
    bl_idname = "KEYDIFF3D_PT_export"
    bl_label = "Export"
    bl_order = 3

    def draw(self, context):
        layout = self.layout
        settings = context.scene.keydiff3d
        layout.prop(settings, "export_target")
        layout.prop(settings, "export_format", expand=True)
        layout.prop(settings, "export_root_bone")
        layout.operator("keydiff3d.export_rig", icon="EXPORT")


class KEYDIFF3D_PT_backend(_KeyDiff3DPanel, bpy.types.Panel):
    bl_idname = "KEYDIFF3D_PT_backend"
    bl_label = "Backend"
    bl_order = 4
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        from .preferences import get_preferences

        layout = self.layout
        try:
            layout.prop(get_preferences(context), "backend_url", text="URL")
        except RuntimeError as error:
            layout.label(text=str(error), icon="ERROR")
        row = layout.row(align=True)
        row.operator("keydiff3d.check_backend", icon="URL")
        row.operator("keydiff3d.start_backend", icon="CONSOLE")
        draw_launcher_status(layout)
        listing = remote.models_listing()
        if listing:
            rows = listing.get("models", [])
            installed = sum(1 for r in rows if r.get("valid"))
            layout.label(
                text=f"Models: {installed} of {len(rows)} installed (downloads in the preferences)", icon="FILE_BLEND"
            )


def draw_job_status(layout: bpy.types.UILayout) -> None:
    """The job box: progress bar with stage, percent and elapsed time, and Cancel, while a job runs."""
    job = remote.active_job()
    if job is None:
        return
    box = layout.box()
    if job.finished:
        box.label(
            text=job.error or "KeyDiff3D: rig imported",
            icon="ERROR" if job.error and not job.cancelled else "CHECKMARK",
        )
        return
    box.progress(factor=job.progress, type="BAR", text=job.describe().removeprefix("KeyDiff3D: "))
    box.operator("keydiff3d.cancel_remote_job", icon="CANCEL")


def draw_launcher_status(layout: bpy.types.UILayout) -> None:
    """The local backend started from Blender: starting (elapsed), ready, or why it stopped (last log lines)."""
    launcher = remote.backend_launcher()
    if launcher is None:
        return
    box = layout.box()
    state = launcher.state
    if state.phase == "starting":
        box.label(text=f"Starting the backend ({launcher.elapsed:.0f} s)...", icon="TIME")
        return
    box.label(text=state.message, icon="CHECKMARK" if state.phase == "ready" else "ERROR")
    for line in state.log_tail.splitlines()[-6:]:
        box.label(text=line[:120])


def draw_models(layout: bpy.types.UILayout, prefs) -> None:
    """The preferences' models box: what the backend has, and a Download button for what it lacks."""
    row = layout.row()
    row.label(text="Models on the backend", icon="FILE_BLEND")
    row.operator("keydiff3d.refresh_models", icon="FILE_REFRESH")
    layout.prop(prefs, "hub_token")
    listing = remote.models_listing()
    if not listing:
        layout.label(text="Press Refresh to ask the backend which model files it has", icon="INFO")
        return
    layout.label(text=f"Weights folder: {listing.get('weights_dir', '?')}")
    watch = remote.models_watch()
    for row_data in listing.get("models", []):
        name = row_data.get("name", "?")
        box = layout.box()
        top = box.row()
        icon = "CHECKMARK" if row_data.get("valid") else ("ERROR" if row_data.get("present") else "CANCEL")
        state = "installed" if row_data.get("valid") else ("wrong file" if row_data.get("present") else "missing")
        top.label(text=f"{name}: {state}", icon=icon)
        download = row_data.get("download") or {}
        if watch is not None and watch.name == name and not watch.finished:
            box.progress(factor=watch.fraction, type="BAR", text=watch.describe())
            box.operator("keydiff3d.cancel_model_download", icon="CANCEL")
        elif row_data.get("downloadable") and not row_data.get("valid"):
            top.operator("keydiff3d.download_model", icon="IMPORT").name = name
        box.label(text=str(row_data.get("title", "")))
        if row_data.get("problem"):
            box.label(text=str(row_data["problem"])[:160], icon="ERROR")
        if download.get("status") == "failed":
            box.label(text=str((download.get("error") or {}).get("message", "failed"))[:160], icon="ERROR")
        if row_data.get("gated") and not row_data.get("valid"):
            box.label(
                text=f"Gated: accept the licence at {row_data.get('source', 'huggingface.co')} and set the token above"
            )
        elif not row_data.get("downloadable") and not row_data.get("valid"):
            box.label(text=f"Get it from {row_data.get('source', '?')}")


CLASSES = (KEYDIFF3D_PT_rig, KEYDIFF3D_PT_import, KEYDIFF3D_PT_weights, KEYDIFF3D_PT_export, KEYDIFF3D_PT_backend)
