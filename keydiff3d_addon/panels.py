# SPDX-License-Identifier: GPL-3.0-or-later
"""The "KeyDiff3D" tab in the 3D Viewport sidebar."""

from __future__ import annotations

import bpy

from . import remote
from .weights import RigNotFound, find_rig


class _KeyDiff3DPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "KeyDiff3D"


class KEYDIFF3D_PT_main(_KeyDiff3DPanel, bpy.types.Panel):
    bl_idname = "KEYDIFF3D_PT_main"
    bl_label = "Rig from Image"

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
        remote.draw_job_status(layout)
        row = layout.row(align=True)
        row.operator("keydiff3d.check_backend", icon="URL")
        row.operator("keydiff3d.start_backend", icon="CONSOLE")


class KEYDIFF3D_PT_import(_KeyDiff3DPanel, bpy.types.Panel):
    bl_idname = "KEYDIFF3D_PT_import"
    bl_label = "Import"
    bl_parent_id = "KEYDIFF3D_PT_main"

    def draw(self, context):
        layout = self.layout
        layout.prop(context.scene.keydiff3d, "keypoint_empties")
        layout.operator("keydiff3d.import_bundle", icon="IMPORT")


class KEYDIFF3D_PT_weights(_KeyDiff3DPanel, bpy.types.Panel):
    bl_idname = "KEYDIFF3D_PT_weights"
    bl_label = "Weights"
    bl_parent_id = "KEYDIFF3D_PT_main"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.keydiff3d
        layout.prop(settings, "skin_method")
        row = layout.row(align=True)
        row.prop(settings, "skin_sigma")
        row.prop(settings, "skin_k")
        try:
            armature_obj, mesh_obj = find_rig(context.active_object)
            layout.label(text=f"{armature_obj.name} -> {mesh_obj.name}", icon="MOD_ARMATURE")
        except RigNotFound as error:
            layout.label(text=str(error), icon="INFO")
        layout.operator("keydiff3d.recompute_weights", icon="MOD_VERTEX_WEIGHT")


class KEYDIFF3D_PT_export(_KeyDiff3DPanel, bpy.types.Panel):
    bl_idname = "KEYDIFF3D_PT_export"
    bl_label = "Export"
    bl_parent_id = "KEYDIFF3D_PT_main"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.keydiff3d
        layout.prop(settings, "export_target")
        layout.prop(settings, "export_format", expand=True)
        layout.prop(settings, "export_root_bone")
        layout.operator("keydiff3d.export_rig", icon="EXPORT")


CLASSES = (KEYDIFF3D_PT_main, KEYDIFF3D_PT_import, KEYDIFF3D_PT_weights, KEYDIFF3D_PT_export)
