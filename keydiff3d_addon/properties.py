# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-scene settings of the KeyDiff3D sidebar (`scene.keydiff3d`).

Defaults come from one place each: the category and export menus start at the presets marked
`default = true` (the CLI's defaults too), the export format follows the engine preset, and the
Weights panel starts at the rig's own skinning (its bundle's method and parameters). The skinning
parameter fields are data (`SkinParameter` items filled from `skin_methods.method_parameters`, each
field's limits rigcore's `METHOD_PARAMETERS` range), so a method added to rigcore gets its fields
without a change here.
"""

import bpy

from . import preset_choices
from .rigcore.presets import PresetError
from .rigcore.skinning import MAX_INFLUENCES, METHOD_PARAMETERS, METHODS, MethodParameter
from .skin_methods import method_parameters
from .weights import BONE_HEAT, BUNDLE_METHOD, RigNotFound, find_rig, rig_skinning

SKIN_METHOD_ITEMS = [
    (BUNDLE_METHOD, "Rig's Own", "The method and parameters the rig's bundle was skinned with"),
    *[(m, m.replace("_", " ").title(), f"rigcore's {m} skinning") for m in METHODS],
    (BONE_HEAT, "Blender Automatic", "Blender's automatic weights (bone heat), as Parent > With Automatic Weights"),
]


SIGMA_MIN = 1e-9  # sigma's hard minimum: just above 0 (the operator checks rigcore's range for a relative one)


def _parameter_field(parameter: MethodParameter):
    """The Blender property for one skinning parameter: its type, default, description and, for a
    bounded one, rigcore's range as hard limits (a value outside cannot be typed in). Sigma's range
    holds only for a relative sigma, so it is the soft range there; the operator checks the value
    (`rigcore.skinning.parameter_problem`, with `relative`)."""
    options = {"name": parameter.name.replace("_", " ").capitalize(), "description": parameter.description}
    if isinstance(parameter.default, bool):
        return bpy.props.BoolProperty(default=parameter.default, **options)
    kind = type(parameter.default)  # int or float
    if parameter.name == "sigma":  # relative: rigcore's range; absolute (scene units): any positive width
        options.update(min=SIGMA_MIN, soft_min=parameter.minimum, soft_max=parameter.maximum)
    elif parameter.minimum is not None:
        options.update(min=kind(parameter.minimum), max=kind(parameter.maximum))
    if kind is int:
        return bpy.props.IntProperty(default=parameter.default, **options)
    return bpy.props.FloatProperty(default=parameter.default, precision=4, step=1, **options)


_PARAMETERS = {p.name: p for parameters in METHOD_PARAMETERS.values() for p in parameters}


class SkinParameter(bpy.types.PropertyGroup):
    """One parameter of the chosen skinning method: `name` is the parameter's name and also the
    property holding its value (one property per rigcore parameter, with rigcore's range)."""

    __annotations__ = {name: _parameter_field(parameter) for name, parameter in _PARAMETERS.items()}

    @property
    def value(self):
        return getattr(self, self.name)

    @value.setter
    def value(self, value) -> None:
        setattr(self, self.name, value)


def fill_skin_params(settings, context) -> None:
    """Fields for the chosen method: its defaults, or the rig's own values when it is the rig's method."""
    settings.skin_params.clear()
    if settings.skin_method in (BUNDLE_METHOD, BONE_HEAT):
        return
    values = method_parameters(settings.skin_method)
    try:
        armature_obj, _ = find_rig(context.active_object)
        own_method, own_params, _ = rig_skinning(armature_obj)
        if own_method == settings.skin_method:
            values.update(own_params)
    except RigNotFound:
        pass
    for name, value in values.items():
        item = settings.skin_params.add()
        item.name, item.value = name, value


def skin_params(settings) -> dict:
    """The parameter fields as {name: value}."""
    return {item.name: item.value for item in settings.skin_params}


def _follow_engine_format(settings, context) -> None:
    try:
        settings.export_format = preset_choices.export_preset(settings.export_target).format.upper()
    except PresetError:
        pass


def _default_export_format() -> str:
    try:
        return preset_choices.export_preset(preset_choices.default_export()).format.upper()
    except PresetError:
        return "FBX"


class KeyDiff3DSettings(bpy.types.PropertyGroup):
    image_source: bpy.props.EnumProperty(
        name="Image",
        items=[("FILE", "File", "An image file on disk"), ("LOADED", "Loaded", "An image already loaded in Blender")],
        default="FILE",
    )
    image_path: bpy.props.StringProperty(
        name="Image file", subtype="FILE_PATH", description="Photo or render of one creature"
    )
    image: bpy.props.PointerProperty(name="Image", type=bpy.types.Image, description="An image loaded in Blender")
    preset: bpy.props.EnumProperty(
        name="Preset",
        items=preset_choices.category_enum_items,
        default=preset_choices.default_index("category"),
        description="Creature category preset",
    )
    target_height: bpy.props.FloatProperty(
        name="Target height (m)",
        description="Height of the rig in metres, whatever the scene's unit scale (0 keeps the bundle's coordinates)",
        default=1.0,
        min=0.0,
        soft_max=10.0,
    )
    keypoint_empties: bpy.props.BoolProperty(
        name="Keypoint empties", description="Add an empty at each keypoint", default=False
    )
    skin_method: bpy.props.EnumProperty(
        name="Method", items=SKIN_METHOD_ITEMS, default=BUNDLE_METHOD, update=fill_skin_params
    )
    skin_params: bpy.props.CollectionProperty(type=SkinParameter)
    skin_k: bpy.props.IntProperty(
        name="Influences",
        description="Bones per vertex (the rig's own method keeps its own)",
        default=MAX_INFLUENCES,
        min=1,
        max=MAX_INFLUENCES,
    )
    export_format: bpy.props.EnumProperty(
        name="Format",
        items=[("FBX", "FBX", "Autodesk FBX"), ("GLB", "glTF (.glb)", "Binary glTF 2.0")],
        default=_default_export_format(),
        description="File format (follows the engine preset's choice when the engine changes)",
    )
    export_target: bpy.props.EnumProperty(
        name="Engine",
        items=preset_choices.export_enum_items,
        default=preset_choices.default_index("export"),
        update=_follow_engine_format,
        description="Game-engine export preset",
    )
    export_root_bone: bpy.props.BoolProperty(
        name="Root bone",
        description="Add a non-deforming root bone at the origin even when the engine preset does not ask for one",
        default=False,
    )


def register_extra() -> None:
    bpy.types.Scene.keydiff3d = bpy.props.PointerProperty(type=KeyDiff3DSettings)


def unregister_extra() -> None:
    del bpy.types.Scene.keydiff3d


CLASSES = (SkinParameter, KeyDiff3DSettings)
