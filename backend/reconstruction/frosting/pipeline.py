"""Gaussian Frosting end to end (Guedon & Lepetit, ECCV 2024), implemented on gsplat.

hull (CPU) -> 3DGS initialised on the hull (masked, no background Gaussians) -> SuGaR-style
regularisation -> density level set -> base mesh at the rig's face budget -> frosting layer in
prisms over the base triangles, thickness from the unregularised Gaussians -> fitted frosting.
The base mesh is coloured from the views like the hull, so the rig gets the same kind of mesh
from either method.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import trimesh

from ...device import resolve_device
from ...errors import InputError
from ...geometry import Cameras
from ...progress import Progress
from ..coloring import bake_texture, vertex_colors
from ..hull import HullConfig, validate_views, visual_hull
from ..meshing import MeshReport
from .gaussians import init_from_mesh
from .layer import FrostingGaussians, init_frosting, shell_thickness
from .render import Rasterizer, pick_rasterizer
from .surface import base_mesh
from .train import FitSchedule, ViewData, fit_frosting, fit_gaussians


@dataclass(frozen=True)
class FrostingConfig:
    gaussian_iterations: int = 3000  # plain 3DGS
    regularized_iterations: int = 3000  # with the SuGaR terms
    frosting_iterations: int = 3000
    init_gaussians: int = 50_000  # sampled on the hull; densification grows them
    frosting_gaussians: int = 150_000
    grid_resolution: int = 256  # level-set extraction
    level: float = 0.5
    target_faces: int = 20_000
    texture_size: int = 0
    hull: HullConfig = HullConfig()
    schedule: FitSchedule = FitSchedule()
    seed: int = 0

    PRESETS = {
        "short": dict(
            gaussian_iterations=3000, regularized_iterations=3000, frosting_iterations=3000, frosting_gaussians=150_000
        ),
        "medium": dict(
            gaussian_iterations=7000, regularized_iterations=6000, frosting_iterations=7000, frosting_gaussians=300_000
        ),
        "long": dict(
            gaussian_iterations=7000,
            regularized_iterations=8000,
            frosting_iterations=15_000,
            frosting_gaussians=500_000,
        ),
    }

    @classmethod
    def preset(cls, name: str, **overrides) -> "FrostingConfig":
        if name not in cls.PRESETS:
            raise InputError(f"unknown frosting preset {name!r}; choose one of {', '.join(cls.PRESETS)}")
        return cls(**{**cls.PRESETS[name], **overrides})


@dataclass
class FrostingOutput:
    mesh: trimesh.Trimesh  # base mesh, vertex colours; the Gaussians are bound to these vertices
    gaussians: FrostingGaussians  # on the CPU
    report: MeshReport
    textured: trimesh.Trimesh | None = None
    timings: dict[str, float] = field(default_factory=dict)
    losses: dict[str, list[float]] = field(default_factory=dict)


def run_frosting(
    images: np.ndarray,
    masks: np.ndarray,
    cameras: Cameras,
    config: FrostingConfig = FrostingConfig(),
    progress: Progress | None = None,
    *,
    device: str | torch.device = "cuda",
    rasterizer: Rasterizer | None = None,
) -> FrostingOutput:
    """Frosting of the object in images (V, H, W, 3) / masks (V, H, W) seen by `cameras`.

    On CUDA it uses gsplat. `device="cpu"` uses the dense reference rasteriser: only for tiny
    images and Gaussian counts (tests), the product never routes frosting to the CPU.
    """
    progress = progress or Progress()
    device = resolve_device(device)
    images = np.asarray(images, np.float32)
    masks = np.asarray(masks, np.float32)
    validate_views(images, masks, cameras)
    rasterizer = rasterizer or pick_rasterizer(device)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = now - clock
        clock = now

    hull = visual_hull(images, masks, cameras, replace(config.hull, texture_size=0), progress.span(0.0, 0.05, "hull"))
    lap("hull")
    views = ViewData.from_arrays(images, masks, cameras, device)
    extent = float(np.linalg.norm(hull.mesh.extents))
    init = init_from_mesh(hull.mesh, config.init_gaussians, seed=config.seed)
    plain = replace(config.schedule, iterations=config.gaussian_iterations, regularize_from=None)
    free, loss_free = fit_gaussians(
        init, views, plain, rasterizer, extent=extent, seed=config.seed, progress=progress.span(0.05, 0.35, "3dgs")
    )
    lap("gaussians")
    regular = replace(config.schedule, iterations=config.regularized_iterations, regularize_from=0, densify=False)
    flat, loss_reg = fit_gaussians(
        free,
        views,
        regular,
        rasterizer,
        extent=extent,
        seed=config.seed + 1,
        progress=progress.span(0.35, 0.6, "regularisation"),
    )
    lap("regularisation")
    progress.update(0.6, "level set", "base mesh")
    base, report = base_mesh(
        flat,
        resolution=config.grid_resolution,
        half=config.hull.half,
        level=config.level,
        target_faces=config.target_faces,
        hull=hull.mesh,
    )
    rgba, zbuffer = vertex_colors(base, images, masks, cameras)
    base.visual = trimesh.visual.ColorVisuals(base, vertex_colors=rgba)
    lap("base_mesh")
    inner, outer = shell_thickness(base, free, minimum=0.004 * extent, maximum=0.05 * extent)
    layer = init_frosting(base, inner, outer, config.frosting_gaussians, seed=config.seed)
    layer, loss_frost = fit_frosting(
        layer,
        views,
        config.frosting_iterations,
        rasterizer,
        schedule=config.schedule,
        seed=config.seed + 2,
        progress=progress.span(0.65, 0.98, "frosting"),
    )
    lap("frosting")
    textured = (
        bake_texture(base, images, masks, cameras, zbuffer, size=config.texture_size)
        if config.texture_size > 0
        else None
    )
    progress.update(1.0, "frosting done", "frosting")
    return FrostingOutput(
        mesh=base,
        gaussians=layer.to("cpu"),
        report=report,
        textured=textured,
        timings=timings,
        losses={"gaussians": loss_free, "regularisation": loss_reg, "frosting": loss_frost},
    )
