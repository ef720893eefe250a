"""SV3D-p's sampler: EDM sigmas, v-prediction denoiser with EDM scaling, Euler steps, triangle CFG.

Settings of the official sv3d_p.yaml: EDMDiscretization(sigma_min=0.002, sigma_max=700, rho=7),
VScalingWithEDMcNoise, EulerEDMSampler without churn, TrianglePredictionGuider(max_scale=2.5,
min_scale=1.0) over 21 frames; 50 steps in the official script.

Tau (the paper's "denoise from T=1000 down to tau=500") has no direct meaning in an EDM sampler.
Adopted mapping: the DDPM timestep t of Stable Diffusion's scaled-linear schedule (the schedule SVD
and SV3D descend from) has noise level sigma(t) = sqrt((1 - abar_t) / abar_t); features are tapped
at the sampling step whose sigma is nearest to sigma(tau) (tau=500 -> sigma ~ 1.6). See docs/SV3D.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


def edm_sigmas(num_steps: int, sigma_min: float = 0.002, sigma_max: float = 700.0, rho: float = 7.0) -> np.ndarray:
    """Karras/EDM noise levels, decreasing from sigma_max to sigma_min, then a final 0: (num_steps + 1,)."""
    ramp = np.linspace(0.0, 1.0, num_steps)
    inv_max, inv_min = sigma_max ** (1.0 / rho), sigma_min ** (1.0 / rho)
    sigmas = (inv_max + ramp * (inv_min - inv_max)) ** rho
    return np.append(sigmas, 0.0)


def triangle_guidance(num_frames: int, min_scale: float = 1.0, max_scale: float = 2.5) -> np.ndarray:
    """Per-frame CFG scale: min at the first and last frame (next to the input view), max half way round."""
    values = np.linspace(0.0, 1.0, num_frames)
    triangle = 2.0 * np.abs(values - np.floor(values + 0.5))
    return min_scale + triangle * (max_scale - min_scale)


def ddpm_sigma(
    t: float, num_train_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012
) -> float:
    """sigma of DDPM timestep t under SD's scaled-linear betas (the adopted tau -> sigma mapping)."""
    betas = np.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps) ** 2
    alpha_bar = np.cumprod(1.0 - betas)[int(np.clip(round(t), 0, num_train_timesteps - 1))]
    return float(np.sqrt((1.0 - alpha_bar) / alpha_bar))


def nearest_step(sigmas: np.ndarray, sigma: float) -> int:
    """Index of the sampling step (0..len-2; the final 0 is not a step) whose sigma is closest in log space."""
    steps = np.asarray(sigmas[:-1], np.float64)
    return int(np.argmin(np.abs(np.log(steps) - math.log(sigma))))


@dataclass(frozen=True)
class VScalingEDM:
    """c_skip, c_out, c_in, c_noise of SGM's VScalingWithEDMcNoise for a noise level sigma."""

    sigma: float

    @property
    def c_skip(self) -> float:
        return 1.0 / (self.sigma**2 + 1.0)

    @property
    def c_out(self) -> float:
        return -self.sigma / math.sqrt(self.sigma**2 + 1.0)

    @property
    def c_in(self) -> float:
        return 1.0 / math.sqrt(self.sigma**2 + 1.0)

    @property
    def c_noise(self) -> float:
        return 0.25 * math.log(self.sigma)


def cfg_combine(uncond: torch.Tensor, cond: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Per-frame guidance u + s_f (c - u); tensors (B, T, ...), scales (T,). SGM guides D, which is
    affine in v with the same coefficients for both halves, so guiding v is the same thing."""
    s = scales.to(cond.device, cond.dtype).reshape(1, -1, *([1] * (cond.ndim - 2)))
    return uncond + s * (cond - uncond)


def denoised_from_v(x: torch.Tensor, v: torch.Tensor, sigma: float) -> torch.Tensor:
    """D(x; sigma) = c_skip x + c_out v for a v-prediction made on c_in x."""
    s = VScalingEDM(sigma)
    return x * s.c_skip + v.to(x.dtype) * s.c_out


def euler_step(x: torch.Tensor, denoised: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    """One Euler step of the probability-flow ODE dx/dsigma = (x - D) / sigma (EulerEDMSampler, no churn)."""
    return x + (x - denoised) / sigma * (sigma_next - sigma)


def initial_noise(shape: tuple[int, ...], sigma_max: float, generator: torch.Generator, device, dtype) -> torch.Tensor:
    """x_T = N(0, 1) * sqrt(1 + sigma_max^2) as SGM's sampling loop prepares it (drawn on the CPU:
    seeds are device-independent)."""
    noise = torch.randn(shape, generator=generator, dtype=torch.float32)
    return (noise * math.sqrt(1.0 + sigma_max**2)).to(device=device, dtype=dtype)
