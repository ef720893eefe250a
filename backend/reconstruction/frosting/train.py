"""Fitting Gaussians to masked orbit views: plain 3DGS, then with SuGaR-style regularisation.

Object-centric training (no background Gaussians): each step renders over a random background
colour and the target is re-composited over the same colour through the mask, so a Gaussian can
never explain background pixels; an alpha term makes the rendered opacity match the mask.
Densification and pruning are gsplat's `DefaultStrategy` (a maintained implementation of the 3DGS
heuristics); it stops when the regularisation starts, as in SuGaR.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from ...geometry import Cameras
from ...model.losses import ssim
from ...progress import Progress
from .gaussians import GaussianParams
from .layer import FrostingGaussians
from .regularization import density_alignment_loss, flatness_loss, nearest_neighbours, opacity_binary_loss
from .render import Rasterizer, camera_tensors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitSchedule:
    iterations: int = 7000
    regularize_from: int | None = None  # step at which SuGaR terms start (None: never)
    densify: bool = True
    ssim_weight: float = 0.2
    alpha_weight: float = 1.0
    density_weight: float = 0.1
    opacity_weight: float = 0.01
    flat_weight: float = 1.0
    density_samples: int = 100_000
    neighbours: int = 16
    neighbours_every: int = 500
    refine_start: int = 500  # densification (gsplat DefaultStrategy): first step and period
    refine_every: int = 100
    lr_means: float = 1.6e-4  # x object extent, decays x0.01 over the run
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacities: float = 5e-2
    lr_colors: float = 1e-2


@dataclass
class ViewData:
    """Training views as tensors on the training device."""

    images: torch.Tensor  # (V, H, W, 3) in [0, 1], on white
    masks: torch.Tensor  # (V, H, W, 1) in [0, 1]
    viewmats: torch.Tensor  # (V, 4, 4)
    Ks: torch.Tensor  # (V, 3, 3)
    width: int
    height: int

    @classmethod
    def from_arrays(cls, images: np.ndarray, masks: np.ndarray, cameras: Cameras, device: torch.device) -> "ViewData":
        viewmats, Ks = camera_tensors(cameras, device)
        return cls(
            torch.as_tensor(np.asarray(images, np.float32), device=device),
            torch.as_tensor(np.asarray(masks, np.float32), device=device)[..., None],
            viewmats,
            Ks,
            cameras.width,
            cameras.height,
        )


def fit_gaussians(
    init: GaussianParams,
    views: ViewData,
    schedule: FitSchedule,
    rasterizer: Rasterizer,
    *,
    extent: float = 1.0,
    seed: int = 0,
    progress: Progress | None = None,
) -> tuple[GaussianParams, list[float]]:
    """Optimise `init` on `views`; returns the fitted Gaussians and the loss per step."""
    device = views.images.device
    generator = torch.Generator(device=device).manual_seed(seed)
    params = torch.nn.ParameterDict(
        {k: torch.nn.Parameter(v.detach().to(device).clone()) for k, v in init.as_dict().items()}
    )
    lrs = {
        "means": schedule.lr_means * extent,
        "scales": schedule.lr_scales,
        "quats": schedule.lr_quats,
        "opacities": schedule.lr_opacities,
        "colors": schedule.lr_colors,
    }
    optimizers = {k: torch.optim.Adam([{"params": params[k], "lr": lr, "name": k}], eps=1e-15) for k, lr in lrs.items()}
    strategy, state = _strategy(schedule, extent, params, optimizers)
    decay = 0.01 ** (1.0 / max(schedule.iterations, 1))
    neighbours = None
    losses: list[float] = []
    V = views.images.shape[0]
    order = torch.randperm(V, generator=generator, device=device)
    for step in range(schedule.iterations):
        if progress and step % 50 == 0:
            progress.update(
                step / schedule.iterations, f"step {step}/{schedule.iterations}, {len(params['means'])} Gaussians"
            )
        v = int(order[step % V])
        if step % V == V - 1:
            order = torch.randperm(V, generator=generator, device=device)
        rgb, alpha, target, mask, info = _render_step(
            views,
            v,
            rasterizer,
            generator,
            params["means"],
            params["quats"],
            params["scales"].exp(),
            torch.sigmoid(params["opacities"]),
            torch.sigmoid(params["colors"]),
        )
        if strategy is not None:
            strategy.step_pre_backward(params, optimizers, state, step, info)
        loss = photometric_loss(rgb, alpha, target, mask, schedule)
        if schedule.regularize_from is not None and step >= schedule.regularize_from:
            current = GaussianParams.from_dict(params)
            if (
                neighbours is None
                or (step - schedule.regularize_from) % schedule.neighbours_every == 0
                or len(neighbours) != len(current)
            ):
                neighbours = nearest_neighbours(current.means, schedule.neighbours)
            loss = loss + schedule.density_weight * density_alignment_loss(
                current, neighbours, schedule.density_samples, generator
            )
            loss = loss + schedule.opacity_weight * opacity_binary_loss(current)
            loss = loss + schedule.flat_weight * flatness_loss(current, extent)
        loss.backward()
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        if strategy is not None:  # after the step, as gsplat's trainer does: it may replace the parameters
            strategy.step_post_backward(params, optimizers, state, step, info, packed=False)
        for group in optimizers["means"].param_groups:
            group["lr"] *= decay
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):
            raise FloatingPointError(f"Gaussian fitting diverged at step {step} (loss {losses[-1]})")
    if progress:
        progress.update(1.0, f"{len(params['means'])} Gaussians")
    fitted = GaussianParams.from_dict({k: v.detach() for k, v in params.items()})
    return fitted, losses


def _render_step(views: ViewData, v: int, rasterizer: Rasterizer, generator: torch.Generator, *gaussians: torch.Tensor):
    """Render view v over a random background; returns (rgb, alpha, target over that background, mask, info)."""
    device = views.images.device
    background = torch.rand(1, 3, device=device, generator=generator)
    mask = views.masks[v : v + 1]
    target = views.images[v : v + 1] + (1 - mask) * (background[:, None, None, :] - 1.0)
    render, alpha, info = rasterizer(
        *gaussians, views.viewmats[v : v + 1], views.Ks[v : v + 1], views.width, views.height, backgrounds=background
    )
    return render[..., :3], alpha, target, mask, info


def photometric_loss(
    rgb: torch.Tensor, alpha: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, schedule: FitSchedule
) -> torch.Tensor:
    """(1 - l) L1 + l D-SSIM (11 x 11 Gaussian window, as in 3DGS) on colour, plus L1 between rendered
    opacity and the mask.

    rgb, target (1, H, W, 3); alpha, mask (1, H, W, 1)."""
    structure = ssim(rgb.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2), window=11)
    loss = (1 - schedule.ssim_weight) * (rgb - target).abs().mean() + schedule.ssim_weight * (1 - structure)
    return loss + schedule.alpha_weight * (alpha - mask).abs().mean()


def fit_frosting(
    layer: FrostingGaussians,
    views: ViewData,
    iterations: int,
    rasterizer: Rasterizer,
    *,
    schedule: FitSchedule = FitSchedule(),
    seed: int = 0,
    progress: Progress | None = None,
) -> tuple[FrostingGaussians, list[float]]:
    """Optimise the frosting layer's free parameters (the base mesh and shells stay fixed)."""
    device = views.images.device
    generator = torch.Generator(device=device).manual_seed(seed)
    layer = layer.to(device)
    params = torch.nn.ParameterDict(
        {k: torch.nn.Parameter(getattr(layer, k).detach().clone()) for k in FrostingGaussians.TRAINABLE}
    )
    lrs = {
        "bary_logits": 1e-2,
        "shell_logits": 1e-2,
        "local_quats": schedule.lr_quats,
        "log_scales": schedule.lr_scales,
        "opacity_logits": schedule.lr_opacities,
        "color_logits": schedule.lr_colors,
    }
    optimizer = torch.optim.Adam([{"params": [params[k]], "lr": lr} for k, lr in lrs.items()], eps=1e-15)
    losses: list[float] = []
    V = views.images.shape[0]
    for step in range(iterations):
        if progress and step % 50 == 0:
            progress.update(step / iterations, f"frosting step {step}/{iterations}")
        g = layer.with_params(dict(params)).world()
        rgb, alpha, target, mask, _ = _render_step(
            views,
            int(torch.randint(0, V, (1,), generator=generator, device=device)),
            rasterizer,
            generator,
            g.means,
            g.quats,
            g.scales,
            g.opacities,
            g.colors,
        )
        loss = photometric_loss(rgb, alpha, target, mask, schedule)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):
            raise FloatingPointError(f"frosting fitting diverged at step {step}")
    if progress:
        progress.update(1.0, "frosting fitted")
    return layer.with_params({k: v.detach() for k, v in params.items()}), losses


def _strategy(schedule: FitSchedule, extent: float, params, optimizers):
    """gsplat's densify/prune strategy, active until the regularisation starts (or never)."""
    if not schedule.densify:
        return None, None
    try:
        from gsplat.strategy import DefaultStrategy
    except ImportError:  # only the CPU reference path gets here: CUDA frosting requires gsplat
        log.warning("gsplat is not installed: fitting without densification")
        return None, None

    stop = schedule.regularize_from if schedule.regularize_from is not None else schedule.iterations
    strategy = DefaultStrategy(
        refine_start_iter=min(schedule.refine_start, stop // 4),
        refine_stop_iter=stop,
        reset_every=3000,
        refine_every=schedule.refine_every,
        verbose=False,
    )
    strategy.check_sanity(params, optimizers)
    return strategy, strategy.initialize_state(scene_scale=extent)
