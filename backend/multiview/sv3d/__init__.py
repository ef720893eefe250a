"""SV3D-p (Stable Video 3D, camera-conditioned) in diffusers with decoder feature taps.

Public API: `SV3DGenerator` (a `MultiViewGenerator`), `SV3DConfig`, `RuntimeOptions`,
`load_sv3d_models`, `load_generator` (weights discovered through `keydiff3d.weights`).
Heavy imports (diffusers, transformers) happen on first use of a submodule.
"""

from __future__ import annotations

from pathlib import Path

from .generator import RuntimeOptions, SV3DConfig, SV3DGenerator
from .loading import SV3DModels, load_sv3d_models


def load_generator(
    sv3d: str | Path | None = None,
    svd_xt: str | Path | None = None,
    config: SV3DConfig | None = None,
    runtime: RuntimeOptions | None = None,
) -> SV3DGenerator:
    """An `SV3DGenerator` from explicit paths or, where None, the files `keydiff3d weights` finds.

    Files are validated (header/keys) before anything is loaded; problems raise MissingWeightsError.
    """
    from ... import weights

    sv3d_path = weights.require("sv3d_p", sv3d)
    svd_path = None if weights.sv3d_has_components(sv3d_path) else weights.require("svd_xt", svd_xt)
    runtime = runtime or RuntimeOptions()
    device = runtime.torch_device()
    models = load_sv3d_models(sv3d_path, svd_path, dtype=runtime.torch_dtype(device))
    return SV3DGenerator(models, config or SV3DConfig(), runtime)


__all__ = ["RuntimeOptions", "SV3DConfig", "SV3DGenerator", "SV3DModels", "load_generator", "load_sv3d_models"]
