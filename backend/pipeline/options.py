"""Options of one pipeline run, shared by `keydiff3d rig`, `keydiff3d rig-mesh`, the demo and the service.

The service receives them as a JSON object, so `from_dict` checks every key, type and the preset
(it must be a category preset in presets/) and answers a wrong one with one `InputError` sentence
at submission instead of a failure deep inside a stage.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from keydiff3d_addon.rigcore.presets import PresetError, default_preset_name, load_category_preset

from ..errors import InputError
from ..mesh_io import UP_AXES

DEVICES = ("auto", "cuda", "cpu")
RECONSTRUCTIONS = ("auto", "hull", "frosting")


@dataclass
class PipelineOptions:
    """What a run should do. Defaults give the embedded CPU-capable behaviour.

    preset:          a category preset in presets/ (skeleton naming, leaf/root bones, skinning);
                     default: the one marked `default = true` (quadruped).
    device:          auto (CUDA when present) | cuda | cpu.
    checkpoint:      a KeyDiff3D checkpoint file or folder; None = the shipped default.
    reconstruction:  auto (frosting on CUDA, visual hull on CPU) | hull | frosting (CUDA only).
    up_axis:         up axis of an uploaded mesh: auto (Y for glTF files, Z otherwise) | Y | Z.
    export_glb:      also write rig.glb next to rig.json.
    posed_preview:   also write preview_posed.png (the rig at rest and bent, a Workbench render: a few seconds).
    seed:            seed of the stochastic stages (SV3D sampling), for reproducible results.
    move_inside:     move given keypoints (rig-mesh --keypoints) that lie outside the mesh just inside
                     it; predicted keypoints are always moved. What moved is in the provenance.
    """

    preset: str = dataclasses.field(default_factory=lambda: default_preset_name("category"))
    device: str = "auto"
    checkpoint: str | None = None
    reconstruction: str = "auto"
    up_axis: str = "auto"
    export_glb: bool = True
    posed_preview: bool = True
    seed: int = 0
    move_inside: bool = False

    def __post_init__(self) -> None:
        _choice("device", self.device, DEVICES)
        _choice("reconstruction", self.reconstruction, RECONSTRUCTIONS)
        _choice("up_axis", self.up_axis, UP_AXES)
        if not isinstance(self.preset, str) or not self.preset.replace("_", "").replace("-", "").isalnum():
            raise InputError(f"option 'preset' must be a preset name such as 'quadruped', got {self.preset!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "PipelineOptions":
        """Options from a JSON object; unknown keys, wrong types and a preset that is not a
        category preset (missing, malformed, or an export preset such as 'unity') raise InputError."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise InputError("options must be a JSON object such as {\"preset\": \"quadruped\"}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise InputError(f"unknown option {unknown[0]!r}; known options: {', '.join(known)}")
        values = {}
        for name, value in data.items():
            values[name] = _check_type(name, value, known[name].type)
        options = cls(**values)
        try:
            load_category_preset(options.preset)
        except PresetError as error:
            raise InputError(f"option 'preset': {error}") from None
        return options

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"option {name!r} must be one of {', '.join(choices)}, got {value!r}")


_TYPES = {"str": (str,), "str | None": (str, type(None)), "bool": (bool,), "int": (int,)}


def _check_type(name: str, value: Any, annotation: str) -> Any:
    allowed = _TYPES[annotation]
    # bool is an int in Python; a JSON true must not pass as a seed
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        wanted = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
        raise InputError(f"option {name!r} must be {wanted}, got {type(value).__name__}")
    return value
