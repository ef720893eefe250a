"""The one entry point of the stage: `reconstruct(images, masks, cameras, method=...)`.

`method="auto"` is the product's switch: Gaussian Frosting where CUDA (and gsplat) is available,
the visual hull otherwise. Both return the mesh in the views' world frame, so the keypoints need no
registration.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import trimesh

from ..errors import DeviceError, InputError
from ..geometry import Cameras
from ..progress import Progress
from .hull import HullConfig, visual_hull
from .meshing import MeshReport

if TYPE_CHECKING:  # frosting imports torch; the hull path does not need it
    from .frosting.layer import FrostingGaussians

METHODS = ("auto", "hull", "frosting")


@dataclass
class ReconstructionResult:
    mesh: trimesh.Trimesh  # world frame, vertex colours RGBA uint8 (the frosting's base mesh for "frosting")
    method: str  # "hull" or "frosting"
    report: MeshReport
    gaussians: FrostingGaussians | None = None  # bound to `mesh` (frosting only)
    textured: trimesh.Trimesh | None = None  # UV-textured copy of `mesh`, when a texture was asked for
    timings: dict[str, float] = field(default_factory=dict)  # seconds per sub-stage


def resolve_method(method: str) -> str:
    """'auto' -> 'frosting' with CUDA, else 'hull'; 'frosting' without CUDA is a DeviceError."""
    if method not in METHODS:
        raise InputError(f"unknown reconstruction method {method!r}; choose one of {', '.join(METHODS)}")
    from ..device import cuda_available  # imports torch: not at module level (the hull path does not need it)

    if method == "auto":
        return "frosting" if cuda_available() else "hull"
    if method == "frosting" and not cuda_available():
        raise DeviceError("Gaussian Frosting needs a CUDA GPU; use --method hull on this machine")
    return method


def reconstruct(
    images: np.ndarray,
    masks: np.ndarray,
    cameras: Cameras,
    method: str = "auto",
    progress: Progress | None = None,
    *,
    hull: HullConfig = HullConfig(),
    preset: str = "short",
    target_faces: int | None = None,
    texture_size: int = 0,
) -> ReconstructionResult:
    """Mesh (and, for frosting, Gaussians) of the object in the orbit views.

    images (V, H, W, 3) float [0, 1] on white; masks (V, H, W) float [0, 1]; cameras: V cameras of
    W x H. `target_faces` is the rig's face budget (default: the hull's); `preset` is the frosting
    schedule (short / medium / long); `texture_size` > 0 also bakes a UV texture.
    """
    progress = progress or Progress()
    method = resolve_method(method)
    faces = target_faces or hull.target_faces
    start = time.perf_counter()
    if method == "hull":
        config = replace(hull, target_faces=faces, texture_size=texture_size)
        result = visual_hull(images, masks, cameras, config, progress.span(0.0, 1.0, "reconstruction"))
        return ReconstructionResult(
            mesh=result.mesh,
            method="hull",
            report=result.report,
            textured=result.textured,
            timings={"hull": time.perf_counter() - start},
        )
    from .frosting import FrostingConfig, run_frosting

    config = FrostingConfig.preset(preset, target_faces=faces, texture_size=texture_size, hull=hull)
    out = run_frosting(images, masks, cameras, config, progress.span(0.0, 1.0, "reconstruction"))
    return ReconstructionResult(
        mesh=out.mesh,
        method="frosting",
        report=out.report,
        gaussians=out.gaussians,
        textured=out.textured,
        timings=out.timings,
    )
