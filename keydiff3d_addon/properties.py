# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-scene settings of the KeyDiff3D sidebar (`scene.keydiff3d`)."""

import bpy

from . import preset_choices
from .rigcore.skinning import MAX_INFLUENCES, METHODS

class KeyDiff3DSettings(bpy.types.PropertyGroup):
    image_source: bpy.props.EnumProperty(
        name="Image",
        items=[("FILE", "File", "An image file on disk"), ("LOADED", "Loaded", "An image already loaded in Blender")],
        default="FILE",
    )
    image_path: bpy.props.StringProperty(name="Image file", subtype="FILE_PATH", description="Photo or render of one creature")
    image: bpy.props.PointerProperty(name="Image", type=bpy.types.Image, description="An image loaded in Blender")
    preset: bpy.props.EnumProperty(name="Preset", items=preset_choices.category_enum_items, description="Creature category preset")
    target_height: bpy.props.FloatProperty(
        name="Target height",
        description="Height of the imported rig in Blender units (0 keeps the bundle's own scale and position)",
        default=1.0,
        min=0.0,
        soft_max=10.0,
        unit="LENGTH",
    )
    keypoint_empties: bpy.props.BoolProperty(name="Keypoint empties", description="Add an empty at each keypoint", default=False)
    skin_method: bpy.props.EnumProperty(
        name="Method",
        items=[(m, m.replace("_", " ").title(), f"Skinning method {m}") for m in METHODS],
        default=METHODS[0],
    )
    skin_sigma: bpy.props.FloatProperty(
        name="Sigma",
        description="Gaussian width as a fraction of the mesh's largest side",
        default=0.08,
        min=1e-4,
        soft_max=0.5,
    )
    skin_k: bpy.props.IntProperty(name="Influences", description="Bones per vertex", default=MAX_INFLUENCES, min=1, max=MAX_INFLUENCES)
    export_format: bpy.props.EnumProperty(
        name="Format",
        items=[("FBX", "FBX", "Autodesk FBX"), ("GLB", "glTF (.glb)", "Binary glTF 2.0")],
        default="FBX",
    )
    export_target: bpy.props.EnumProperty(name="Engine", items=preset_choices.export_enum_items, description="Game-engine export preset")
    export_root_bone: bpy.props.BoolProperty(
        name="Root bone",
        description="Add a non-deforming root bone at the origin even when the engine preset does not ask for one",
        default=False,
    )


def register_extra() -> None:
    bpy.types.Scene.keydiff3d = bpy.props.PointerProperty(type=KeyDiff3DSettings)


def unregister_extra() -> None:
    del bpy.types.Scene.keydiff3d


CLASSES = (KeyDiff3DSettings,)
