"""TOML presets (stdlib tomllib): category presets (how to rig a kind of creature) and export presets
(how to write FBX/glTF for a game engine). Every key is checked on load: unknown keys, wrong types
and out-of-range values raise `PresetError` naming the file and key. See docs/PRESETS.md.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .naming import Naming
from .skinning import DEFAULT_METHOD, MAX_INFLUENCES, METHODS, PARAMETER_DEFAULTS


class PresetError(ValueError):
    """A preset that is missing or malformed (one clear sentence)."""


@dataclass(frozen=True)
class SkinningOptions:
    method: str = DEFAULT_METHOD
    sigma: float = PARAMETER_DEFAULTS["sigma"]
    k: int = MAX_INFLUENCES
    sharpness: float = PARAMETER_DEFAULTS["sharpness"]
    smooth_iterations: int = PARAMETER_DEFAULTS["smooth_iterations"]
    smooth_step: float = PARAMETER_DEFAULTS["smooth_step"]
    placeholder_tails: bool = PARAMETER_DEFAULTS["placeholder_tails"]

    def kwargs(self) -> dict:
        """Keyword arguments for `compute_skin_weights`."""
        return dict(method=self.method, sigma=self.sigma, k=self.k, sharpness=self.sharpness,
                    smooth_iterations=self.smooth_iterations, smooth_step=self.smooth_step,
                    placeholder_tails=self.placeholder_tails)  # fmt: skip


@dataclass(frozen=True)
class SkeletonOptions:
    root: str | int = "center"
    leaf_bones: bool = False
    root_bone: bool = False
    volume_weight: float = 1.0
    length_weight: float = 0.0
    prior_margin: float = 0.1  # given adjacencies: the priors break near-ties only (`edge_penalty`)

    def kwargs(self) -> dict:
        """Keyword arguments for `build_skeleton` (besides naming; `prior_margin` applies to given
        adjacencies only, so the caller passes it)."""
        return dict(root=self.root, leaf_bones=self.leaf_bones, root_bone=self.root_bone,
                    volume_weight=self.volume_weight, length_weight=self.length_weight)  # fmt: skip


RIG_METHODS = ("chain", "curve", "fused")


@dataclass(frozen=True)
class RigOptions:
    """How the skeleton is made (docs/PRESETS.md, [rig]). method: "chain" = the learned keypoints'
    spanning tree (the paper's), "curve" = the mesh's own curve skeleton, "fused" = the curve
    skeleton with joints at the learned keypoints; mirror: left / right made mirror images in the
    plane found on the rest surface; the rest are the curve skeleton's settings
    (keydiff3d.rigging.curve_skeleton.CurveSkeletonOptions)."""

    method: str = "chain"
    mirror: bool = True
    resolution: int = 96
    spur_factor: float = 1.5
    bend_tolerance: float = 0.02
    min_branch: float = 0.04
    extend_ends: bool = True
    merge_factor: float = 1.0
    max_bone: float = 0.2
    limb_root: float = 1.0
    anchor_spacing: float = 0.04
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


@dataclass(frozen=True)
class ExportPreset:
    """Settings for Blender's FBX / glTF exporters (names follow bpy.ops.export_scene.fbx)."""

    name: str
    description: str
    format: str = "fbx"  # "fbx" | "glb"
    axis_forward: str = "-Z"
    axis_up: str = "Y"
    global_scale: float = 1.0
    apply_unit_scale: bool = True
    apply_scale_options: str = "FBX_SCALE_ALL"
    bake_space_transform: bool = False
    add_leaf_bones: bool = False
    use_armature_deform_only: bool = True
    armature_name: str = "Armature"
    max_influences: int = 4
    root_bone: bool = True
    primary_bone_axis: str = "Y"
    secondary_bone_axis: str = "X"
    kind: str = "export"


_AXES = ("X", "Y", "Z", "-X", "-Y", "-Z")


def _choice(*options):
    return lambda v: v in options, f"one of {', '.join(map(str, options))}"


_POSITIVE = (lambda v: v > 0, "positive")
_NONNEG = (lambda v: v >= 0, "zero or more")
_FINITE_NONNEG = (lambda v: math.isfinite(v) and v >= 0, "a finite number, zero or more")

# section -> key -> (type, (check, description) or None)
_CATEGORY_SCHEMA = {
    "preset": {
        "name": (str, None), "kind": (str, _choice("category")), "description": (str, None),
        "default": (bool, None),  # the one preset of its kind the CLI and the add-on start with
    },
    "model": {
        "keypoints": (int, (lambda v: v >= 2, "at least 2")),
        "checkpoint": (str, (lambda v: bool(v.strip()), "a non-empty name")),
    },
    "rig": {
        "method": (str, _choice(*RIG_METHODS)),
        "mirror": (bool, None),
        "resolution": (int, (lambda v: 16 <= v <= 512, "between 16 and 512")),
        "spur_factor": (float, _NONNEG),
        "bend_tolerance": (float, _POSITIVE),
        "min_branch": (float, _NONNEG),
        "extend_ends": (bool, None),
        "merge_factor": (float, _NONNEG),
        "max_bone": (float, _NONNEG),
        "limb_root": (float, _NONNEG),
        "anchor_spacing": (float, _NONNEG),
        "keep_anchored_spurs": (bool, None),
    },
    "skeleton": {
        "root": ((str, int), (lambda v: v == "center" or (isinstance(v, int) and v >= 0), "'center' or a keypoint index")),
        "leaf_bones": (bool, None),
        "root_bone": (bool, None),
        "volume_weight": (float, _NONNEG),
        "length_weight": (float, _FINITE_NONNEG),
        "prior_margin": (float, _FINITE_NONNEG),
    },
    "naming": {
        "style": (str, _choice("auto", "index")),
        "limb_down": (str, None),
        "limb_other": (str, None),
        "mirror_tolerance": (float, _POSITIVE),
    },
    "skinning": {
        "method": (str, _choice(*METHODS)),
        "sigma": (float, _POSITIVE),
        "k": (int, (lambda v: 1 <= v <= MAX_INFLUENCES, f"between 1 and {MAX_INFLUENCES}")),
        "sharpness": (float, _POSITIVE),
        "smooth_iterations": (int, _NONNEG),
        "smooth_step": (float, (lambda v: 0 < v <= 1, "in (0, 1]")),
        "placeholder_tails": (bool, None),
    },
}
_EXPORT_SCHEMA = {
    "preset": {
        "name": (str, None), "kind": (str, _choice("export")), "description": (str, None),
        "default": (bool, None),  # the one preset of its kind the CLI and the add-on start with
    },
    "export": {
        "format": (str, _choice("fbx", "glb")),
        "axis_forward": (str, _choice(*_AXES)),
        "axis_up": (str, _choice(*_AXES)),
        "global_scale": (float, _POSITIVE),
        "apply_unit_scale": (bool, None),
        "apply_scale_options": (str, _choice("FBX_SCALE_NONE", "FBX_SCALE_UNITS", "FBX_SCALE_CUSTOM", "FBX_SCALE_ALL")),
        "bake_space_transform": (bool, None),
        "add_leaf_bones": (bool, None),
        "use_armature_deform_only": (bool, None),
        "armature_name": (str, (lambda v: bool(v.strip()), "a non-empty name")),
        "max_influences": (int, (lambda v: 1 <= v <= MAX_INFLUENCES, f"between 1 and {MAX_INFLUENCES}")),
        "root_bone": (bool, None),
        "primary_bone_axis": (str, _choice(*_AXES)),
        "secondary_bone_axis": (str, _choice(*_AXES)),
    },
}


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
    kind = data.get("preset", {}).get("kind")
    if kind == "category":
        _check(data, _CATEGORY_SCHEMA, path.name)
        return _category(data, path.stem)
    if kind == "export":
        _check(data, _EXPORT_SCHEMA, path.name)
        return _export(data, path.stem)
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


def _check(data: dict, schema: dict, source: str) -> None:
    for section, values in data.items():
        if section not in schema:
            raise PresetError(f"{source}: unknown section [{section}] (known: {', '.join(schema)})")
        if not isinstance(values, dict):
            raise PresetError(f"{source}: {section} must be a [{section}] table")
        for key, value in values.items():
            if key not in schema[section]:
                raise PresetError(f"{source}: unknown key {section}.{key} (known: {', '.join(schema[section])})")
            types, rule = schema[section][key]
            types = types if isinstance(types, tuple) else (types,)
            ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
            if not ok and float in types and isinstance(value, int) and not isinstance(value, bool):
                ok = True  # an integer where a float is expected is fine
            if not ok:
                expected = " or ".join(t.__name__ for t in types)
                raise PresetError(f"{source}: {section}.{key} must be {expected}, got {value!r}")
            if rule is not None and not rule[0](value):
                raise PresetError(f"{source}: {section}.{key} must be {rule[1]}, got {value!r}")
    for required in ("name", "kind"):
        if required not in data.get("preset", {}):
            raise PresetError(f"{source}: [preset] needs {required!r}")


def _category(data: dict, stem: str) -> CategoryPreset:
    if "keypoints" not in data.get("model", {}):
        raise PresetError(f"{stem}.toml: [model] needs 'keypoints'")
    return CategoryPreset(
        name=data["preset"]["name"],
        description=data["preset"].get("description", ""),
        keypoints=data["model"]["keypoints"],
        skeleton=_with_floats(SkeletonOptions, data.get("skeleton", {})),
        naming=_with_floats(Naming, data.get("naming", {})),
        skinning=_with_floats(SkinningOptions, data.get("skinning", {})),
        rig=_with_floats(RigOptions, data.get("rig", {})),
        checkpoint=data["model"].get("checkpoint", "default"),
    )


def _with_floats(options, values: dict):
    """options(**values) with integers turned into floats where the field's default is a float."""
    fields = options.__dataclass_fields__
    return options(**{k: float(v) if isinstance(fields[k].default, float) else v for k, v in values.items()})


def _export(data: dict, stem: str) -> ExportPreset:
    values = dict(data.get("export", {}))
    if "global_scale" in values:
        values["global_scale"] = float(values["global_scale"])
    return ExportPreset(name=data["preset"]["name"], description=data["preset"].get("description", ""), **values)
