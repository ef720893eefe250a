"""Options of one pipeline run, shared by `keydiff3d rig`, `keydiff3d rig-mesh`, the demo and the service.

The service receives them as a JSON object, so `from_dict` checks every key, type and the preset
(it must be a category preset in presets/) and answers a wrong one with one `InputError` sentence
at submission instead of a failure deep inside a stage.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from keydiff3d_addon.rigcore.config import Check, between, load, validate
from keydiff3d_addon.rigcore.presets import PresetError, default_preset_name, load_category_preset

from ..errors import InputError
from ..mesh_io import UP_AXES

DEVICES = ("auto", "cuda", "cpu")
RECONSTRUCTIONS = ("auto", "hull", "frosting")
SOURCE = "options"  # first word of every message about them

# a file stem, so a name can never reach outside presets/
_PRESET_NAME = Check(lambda v: v.replace("_", "").replace("-", "").isalnum(), "a preset name such as 'quadruped'")


@dataclass
class PipelineOptions:
    """What a run should do. Defaults give the embedded CPU-capable behaviour.

    preset:          a category preset in presets/ (skeleton naming, leaf/root bones, skinning);
                     default: the one marked `default = true` (quadruped).
    device:          auto (CUDA when present) | cuda | cpu.
    checkpoint:      a KeyDiff3D checkpoint file or folder; default: the preset's [model] checkpoint.
    reconstruction:  auto (frosting on CUDA, visual hull on CPU) | hull | frosting (CUDA only).
    up_axis:         up axis of an uploaded mesh: auto (Y for glTF files, Z otherwise) | Y | Z.
    export_glb:      also write rig.glb next to rig.json.
    posed_preview:   also write preview_posed.png (the rig at rest and bent, a Workbench render: a few seconds).
    seed:            seed of the stochastic stages (SV3D sampling), 0 .. 2**32 - 1, for reproducible results.
    move_inside:     move given keypoints (rig-mesh --keypoints) that lie outside the mesh just inside
                     it; predicted keypoints are always moved. What moved is in the provenance.
    """

    preset: Annotated[str, _PRESET_NAME] = dataclasses.field(default_factory=lambda: default_preset_name("category"))
    device: Literal[DEVICES] = "auto"
    checkpoint: str | None = None
    reconstruction: Literal[RECONSTRUCTIONS] = "auto"
    up_axis: Literal[UP_AXES] = "auto"
    export_glb: bool = True
    posed_preview: bool = True
    seed: Annotated[int, between(0, 2**32 - 1)] = 0  # torch.manual_seed's range
    move_inside: bool = False

    def __post_init__(self) -> None:
        validate(self, source=SOURCE, error=InputError)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> PipelineOptions:
        """Options from a JSON object; unknown keys, wrong types and values, and a preset that is not
        a category preset (missing, malformed, or an export preset such as 'unity') raise InputError."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise InputError('options must be a JSON object such as {"preset": "quadruped"}')
        options = load(cls, data, source=SOURCE, error=InputError)
        try:
            load_category_preset(options.preset)
        except PresetError as error:
            raise InputError(f"{SOURCE}: preset: {error}") from None
        return options

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
