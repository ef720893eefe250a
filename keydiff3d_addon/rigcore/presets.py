"""TOML presets (stdlib tomllib): category presets (how to rig a kind of creature) and export presets
(how to write FBX/glTF for a game engine). Every key is checked on load by the one config loader
(`rigcore.config`): unknown keys, wrong types and out-of-range values raise `PresetError` naming the
file and key. See docs/PRESETS.md.

The dataclasses below are the files' shape: one per [section], fields with their checks beside them.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from .config import Check, at_least, between, finite_non_negative, load, non_empty, non_negative, positive
from .naming import Naming
from .skinning import DEFAULT_METHOD, MAX_INFLUENCES, METHODS, PARAMETER_DEFAULTS, PARAMETER_RANGES


class PresetError(ValueError):
    """A preset that is missing or malformed (one clear sentence)."""


def _in_range(name: str) -> Check:
    """The range rigcore.skinning.METHOD_PARAMETERS gives parameter `name`."""
    return between(*PARAMETER_RANGES[name])


@dataclass(frozen=True)
class SkinningOptions:
    """[skinning]: the method and its parameters (rigcore.skinning.METHOD_PARAMETERS describes them)."""

    method: Literal[METHODS] = DEFAULT_METHOD
    sigma: Annotated[float, _in_range("sigma")] = PARAMETER_DEFAULTS["sigma"]
    k: Annotated[int, between(1, MAX_INFLUENCES)] = MAX_INFLUENCES
    sharpness: Annotated[float, _in_range("sharpness")] = PARAMETER_DEFAULTS["sharpness"]
    smooth_iterations: Annotated[int, _in_range("smooth_iterations")] = PARAMETER_DEFAULTS["smooth_iterations"]
    smooth_step: Annotated[float, _in_range("smooth_step")] = PARAMETER_DEFAULTS["smooth_step"]
    placeholder_tails: bool = PARAMETER_DEFAULTS["placeholder_tails"]

    def kwargs(self) -> dict:
        """Keyword arguments for `compute_skin_weights`."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


_ROOT = Check(lambda v: v == "center" or (isinstance(v, int) and v >= 0), "'center' or a keypoint index")


@dataclass(frozen=True)
class SkeletonOptions:
    """[skeleton]: the spanning tree and the bones made from it (rigcore.skeleton.build_skeleton)."""

    root: Annotated[str | int, _ROOT] = "center"
    leaf_bones: bool = False
    root_bone: bool = False
    volume_weight: Annotated[float, non_negative] = 1.0
    length_weight: Annotated[float, finite_non_negative] = 0.0
    # given adjacencies: the priors break near-ties only (`edge_penalty`)
    prior_margin: Annotated[float, finite_non_negative] = 0.1

    def kwargs(self) -> dict:
        """Keyword arguments for `build_skeleton` (besides naming; `prior_margin` applies to given
        adjacencies only, so the caller passes it)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "prior_margin"}


RIG_METHODS = ("chain", "curve", "fused")


@dataclass(frozen=True)
class RigOptions:
    """How the skeleton is made (docs/PRESETS.md, [rig]). method: "chain" = the learned keypoints'
    spanning tree (the paper's), "curve" = the mesh's own curve skeleton, "fused" = the curve
    skeleton with joints at the learned keypoints; mirror: left / right made mirror images in the
    plane found on the rest surface; the rest are the curve skeleton's settings
    (keydiff3d.rigging.curve_skeleton.CurveSkeletonOptions)."""

    method: Literal[RIG_METHODS] = "chain"
    mirror: bool = True
    resolution: Annotated[int, between(16, 512)] = 96
    spur_factor: Annotated[float, non_negative] = 1.5
    bend_tolerance: Annotated[float, positive] = 0.02
    min_branch: Annotated[float, non_negative] = 0.04
    extend_ends: bool = True
    merge_factor: Annotated[float, non_negative] = 1.0
    max_bone: Annotated[float, non_negative] = 0.2
    limb_root: Annotated[float, non_negative] = 1.0
    anchor_spacing: Annotated[float, non_negative] = 0.04
    keep_anchored_spurs: bool = False


@dataclass(frozen=True)
class CategoryPreset:
    name: str
    description: str
    keypoints: int
    skeleton: SkeletonOptions = field(default_factory=SkeletonOptions)
    naming: Naming = field(default_factory=Naming)
    skinning: SkinningOptions = field(default_factory=SkinningOptions)
    rig: RigOptions = field(default_factory=RigOptions)
    checkpoint: str = "default"
    kind: str = "category"


_AXIS = Literal["X", "Y", "Z", "-X", "-Y", "-Z"]


@dataclass(frozen=True)
class ExportSettings:
    """[export]: settings for Blender's FBX / glTF exporters (names follow bpy.ops.export_scene.fbx)."""

    format: Literal["fbx", "glb"] = "fbx"
    axis_forward: _AXIS = "-Z"
    axis_up: _AXIS = "Y"
    global_scale: Annotated[float, positive] = 1.0
    apply_unit_scale: bool = True
    apply_scale_options: Literal["FBX_SCALE_NONE", "FBX_SCALE_UNITS", "FBX_SCALE_CUSTOM", "FBX_SCALE_ALL"] = (
        "FBX_SCALE_ALL"
    )
    bake_space_transform: bool = False
    add_leaf_bones: bool = False
    use_armature_deform_only: bool = True
    armature_name: Annotated[str, non_empty] = "Armature"
    max_influences: Annotated[int, between(1, MAX_INFLUENCES)] = 4
    root_bone: bool = True
    primary_bone_axis: _AXIS = "Y"
    secondary_bone_axis: _AXIS = "X"


@dataclass(frozen=True, kw_only=True)
class ExportPreset(ExportSettings):
    """An export preset: its name and description and the [export] settings, as flat attributes."""

    name: str
    description: str = ""
    kind: str = "export"


# -- the files' shape


@dataclass(frozen=True)
class _Header:
    """[preset]"""

    name: str
    kind: Literal["category", "export"]
    description: str = ""
    default: bool = False  # the one preset of its kind the CLI and the add-on start with


@dataclass(frozen=True)
class _Model:
    """[model]"""

    keypoints: Annotated[int, at_least(2)]
    checkpoint: Annotated[str, non_empty] = "default"


@dataclass(frozen=True)
class _CategoryFile:
    preset: _Header
    model: _Model
    rig: RigOptions = field(default_factory=RigOptions)
    skeleton: SkeletonOptions = field(default_factory=SkeletonOptions)
    naming: Naming = field(default_factory=Naming)
    skinning: SkinningOptions = field(default_factory=SkinningOptions)


@dataclass(frozen=True)
class _ExportFile:
    preset: _Header
    export: ExportSettings = field(default_factory=ExportSettings)


def default_presets_dir() -> Path:
    """The one presets folder the add-on and the backend read: `presets/` inside the add-on package
    (the extension zip and a non-editable install put it there) or else the source tree's top-level
    `presets/` beside `keydiff3d_addon/`."""
    addon_dir = Path(__file__).resolve().parent.parent
    inside = addon_dir / "presets"
    return inside if inside.is_dir() else addon_dir.parent / "presets"


def list_presets(presets_dir=None, kind: str | None = None) -> list[str]:
    """Preset names (file stems) in the folder, optionally only "category" or "export" ones."""
    folder = Path(presets_dir) if presets_dir else default_presets_dir()
    names = []
    for path in sorted(folder.glob("*.toml")):
        if kind is None or _read(path).get("preset", {}).get("kind") == kind:
            names.append(path.stem)
    return names


def default_preset_name(kind: str, presets_dir=None) -> str:
    """The one preset of `kind` ("category" or "export") marked `default = true` in its [preset] table:
    the default of the CLI and of the add-on alike."""
    folder = Path(presets_dir) if presets_dir else default_presets_dir()
    marked = [name for name in list_presets(folder, kind) if _read(folder / f"{name}.toml")["preset"].get("default")]
    if len(marked) != 1:
        found = ", ".join(marked) or "none"
        raise PresetError(f"exactly one {kind} preset in {folder} must have `default = true` in [preset], not {found}")
    return marked[0]


def load_preset(name_or_path, presets_dir=None) -> CategoryPreset | ExportPreset:
    """Load `presets/<name>.toml` (or a .toml path) and validate every key."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        folder = Path(presets_dir) if presets_dir else default_presets_dir()
        path = folder / f"{name_or_path}.toml"
        if not path.is_file():
            known = ", ".join(list_presets(folder)) if folder.is_dir() else "none"
            raise PresetError(f"no preset named {name_or_path!r} (available: {known})")
    data = _read(path)
    kind = data.get("preset", {}).get("kind") if isinstance(data.get("preset"), dict) else None
    if kind == "category":
        file = load(_CategoryFile, data, source=path.name, error=PresetError)
        return CategoryPreset(
            name=file.preset.name,
            description=file.preset.description,
            keypoints=file.model.keypoints,
            skeleton=file.skeleton,
            naming=file.naming,
            skinning=file.skinning,
            rig=file.rig,
            checkpoint=file.model.checkpoint,
        )
    if kind == "export":
        file = load(_ExportFile, data, source=path.name, error=PresetError)
        settings = {f.name: getattr(file.export, f.name) for f in dataclasses.fields(ExportSettings)}
        return ExportPreset(name=file.preset.name, description=file.preset.description, **settings)
    raise PresetError(f"{path.name}: [preset] kind must be 'category' or 'export', got {kind!r}")


def load_category_preset(name_or_path, presets_dir=None) -> CategoryPreset:
    preset = load_preset(name_or_path, presets_dir)
    if not isinstance(preset, CategoryPreset):
        raise PresetError(f"{name_or_path!r} is an export preset, not a category preset")
    return preset


def load_export_preset(name_or_path, presets_dir=None) -> ExportPreset:
    preset = load_preset(name_or_path, presets_dir)
    if not isinstance(preset, ExportPreset):
        raise PresetError(f"{name_or_path!r} is a category preset, not an export preset")
    return preset


def _read(path: Path) -> dict:
    if not path.is_file():
        raise PresetError(f"preset file {path} does not exist")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as error:
        raise PresetError(f"{path.name} is not valid TOML: {error}") from None
