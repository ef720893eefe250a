"""`SV3DGenerator`: one image -> SV3D-p's 21 orbit views, masks, cameras and tapped decoder features.

Steps: SV3D preprocessing of the RGBA input -> CLIP image embedding + VAE latent of the input view
-> EDM Euler sampling with per-frame triangle guidance over the 21 cameras, the decoder features of
the conditional half tapped at the step nearest the configured tau -> chunked VAE decoding ->
masks by thresholding against the white background -> `MultiViewResult`.

Masks: SV3D-p renders objects on white, so a view's mask is its distance from white
(max over channels of 1 - rgb) ramped between `mask_low` and `mask_high`, with enclosed holes
filled (white patches inside the object); the input view uses the input's alpha. A
`view_segmenter` (e.g. `ForegroundExtractor.refine_view_mask`, SAM prompted with the rough mask's
box) can refine each generated view's mask instead.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ...device import resolve_device
from ...errors import InputError
from ...geometry import Cameras, orbit_cameras
from ...geometry.cameras import SV3D_ELEVATION_DEG, SV3D_NUM_FRAMES, sv3d_azimuths_deg
from ...progress import Progress
from ...segmentation.preprocess import DEFAULT_MARGIN, prepare_sv3d_input
from ..base import MultiViewResult
from .loading import SV3DModels
from .sampler import (
    cfg_combine,
    ddpm_sigma,
    denoised_from_v,
    edm_sigmas,
    euler_step,
    initial_noise,
    nearest_step,
    triangle_guidance,
)
from .taps import DEFAULT_TAPS, FeatureTaps

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class SV3DConfig:
    """Sampling settings; defaults follow the official sv3d_p.yaml / sampling script."""

    size: int = 576
    num_frames: int = SV3D_NUM_FRAMES
    num_steps: int = 50
    elevation_deg: float = SV3D_ELEVATION_DEG
    cond_aug: float = 1e-5
    min_guidance: float = 1.0
    max_guidance: float = 2.5
    sigma_min: float = 0.002
    sigma_max: float = 700.0
    tap_tau: float = 500.0  # DDPM timestep of the paper (T=1000); see sampler.ddpm_sigma
    tap_sigma: float | None = None  # overrides tap_tau when given
    taps: tuple[str, ...] = DEFAULT_TAPS
    margin: float = DEFAULT_MARGIN
    decode_chunk: int = 7  # frames decoded at once (memory)
    guidance_batched: bool = True  # False: uncond and cond in two passes (less activation memory)
    replace_input_view: bool = True  # the official script overwrites the last frame with the input
    mask_low: float = 0.04
    mask_high: float = 0.12
    seed: int = 0

    @property
    def latent_size(self) -> int:
        return self.size // 8

    @property
    def input_view(self) -> int:
        return self.num_frames - 1  # azimuth 0, see geometry.sv3d_azimuths_deg

    def tap_noise_level(self) -> float:
        return self.tap_sigma if self.tap_sigma is not None else ddpm_sigma(self.tap_tau)


@dataclass(frozen=True)
class RuntimeOptions:
    """Where and how the networks run. dtype: fp32 | fp16 | bf16 | auto (fp16 on CUDA, fp32 on CPU)."""

    device: str = "auto"
    dtype: str = "auto"
    attention: str = "sdpa"  # "sdpa" (PyTorch scaled_dot_product_attention) or "classic" (diffusers' AttnProcessor)
    offload: bool = False  # keep networks on the CPU and move each to the GPU only for its stage

    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    def torch_dtype(self, device: torch.device) -> torch.dtype:
        if self.dtype == "auto":
            return torch.float16 if device.type == "cuda" else torch.float32
        if self.dtype not in DTYPES:
            raise InputError(f"unknown dtype {self.dtype!r}; use one of auto, {', '.join(DTYPES)}")
        return DTYPES[self.dtype]


def official_azimuths_deg(num_frames: int) -> np.ndarray:
    """Azimuths the official sampling script feeds SV3D-p: linspace(0, 360, T + 1)[1:] % 360 (last = 0)."""
    return np.linspace(0.0, 360.0, num_frames + 1)[1:] % 360.0


def white_background_masks(images: np.ndarray, low: float, high: float) -> np.ndarray:
    """(V, H, W, 3) views on white -> (V, H, W) float32 foreground masks (see module docstring)."""
    distance = (1.0 - images).max(axis=-1)
    soft = np.clip((distance - low) / max(high - low, 1e-6), 0.0, 1.0)
    solid = np.stack([ndimage.binary_fill_holes(view > 0.5) for view in soft])
    return np.maximum(soft, solid).astype(np.float32)


@dataclass
class _Conditioning:
    clip: torch.Tensor  # (1, 1, D)
    latent: torch.Tensor  # (1, 4, h, w), unscaled VAE mode, as SGM's concat condition
    camera_ids: torch.Tensor  # (1, T, 3) [cond_aug, polar_rad, azimuth_rad]


@dataclass
class SV3DGenerator:
    """SV3D-p as a `MultiViewGenerator` (from_image only)."""

    models: SV3DModels
    config: SV3DConfig = field(default_factory=SV3DConfig)
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    name: str = "sv3d"
    view_segmenter: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None  # (rgb, rough mask) -> mask

    def __post_init__(self) -> None:
        self.device = self.runtime.torch_device()
        self.dtype = self.runtime.torch_dtype(self.device)
        if self.dtype != torch.float32 and self.device.type == "cpu":
            raise InputError("half precision SV3D-p needs CUDA; use dtype fp32 on the CPU")
        if self.config.size % 8:
            raise InputError(f"SV3D image size must be a multiple of 8, got {self.config.size}")
        if self.config.num_steps < 1:
            raise InputError(f"SV3D needs at least one sampling step, got {self.config.num_steps}")
        home = "cpu" if self.runtime.offload else self.device
        self.models.to(home, self.dtype)
        self.models.vae.to(torch.float32 if self.dtype == torch.float16 else self.dtype)  # fp16 VAE decoding overflows
        from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

        processors = {"sdpa": AttnProcessor2_0, "classic": AttnProcessor}
        if self.runtime.attention not in processors:
            raise InputError(f"unknown attention {self.runtime.attention!r}; use sdpa or classic")
        self.models.unet.set_attn_processor(processors[self.runtime.attention]())

    # -- the MultiViewGenerator interface --------------------------------------------------------

    def from_image(self, image_rgba: np.ndarray, progress: Progress | None = None) -> MultiViewResult:
        """image_rgba: (H, W, 4) float32 in [0, 1], alpha = foreground -> 21 views with features."""
        progress = progress or Progress()
        cfg = self.config
        prepared = prepare_sv3d_input(image_rgba, cfg.size, cfg.margin)
        progress.update(0.0, "encoding the input view", stage="sv3d")
        generator = torch.Generator().manual_seed(cfg.seed)
        cond = self._encode(prepared.rgb, generator)
        latents, features = self._sample(cond, generator, progress.span(0.02, 0.9, "sv3d"))
        images = self._decode(latents, progress.span(0.9, 0.98, "sv3d decode"))
        masks = white_background_masks(images, cfg.mask_low, cfg.mask_high)
        if self.view_segmenter is not None:
            for view in progress.span(0.98, 1.0, "sv3d masks").iterate(range(len(images)), message="segmenting views"):
                masks[view] = self.view_segmenter(images[view], masks[view])
        if cfg.replace_input_view:
            images[cfg.input_view] = prepared.rgb
            masks[cfg.input_view] = prepared.alpha
        progress.update(1.0, "views generated", stage="sv3d")
        return MultiViewResult(
            images=images,
            masks=masks,
            cameras=self.cameras(),
            input_view=cfg.input_view,
            features=[features[name].numpy() for name in cfg.taps],
            feature_names=list(cfg.taps),
        )

    def from_mesh(self, mesh, progress: Progress | None = None) -> MultiViewResult:
        raise InputError("SV3D-p generates views from an image; rig a mesh with the render generator instead")

    def cameras(self) -> Cameras:
        """The 21 frames' cameras in the world frame (geometry.orbit_cameras at the configured size/elevation)."""
        return orbit_cameras(
            sv3d_azimuths_deg(self.config.num_frames), self.config.elevation_deg, size=self.config.size
        )

    # -- stages -------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _on_device(self, *modules: torch.nn.Module):
        """With offloading, move `modules` to the GPU for the block and back to the CPU afterwards."""
        if self.runtime.offload:
            for m in modules:
                m.to(self.device)
        try:
            yield
        finally:
            if self.runtime.offload:
                for m in modules:
                    m.to("cpu")
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()

    def _camera_ids(self) -> torch.Tensor:
        """SV3D-p's per-frame condition as the official script builds it (independent of our camera convention)."""
        cfg = self.config
        azimuth = np.radians(official_azimuths_deg(cfg.num_frames))
        polar = np.full(cfg.num_frames, np.radians(90.0 - cfg.elevation_deg))
        ids = np.stack([np.full(cfg.num_frames, cfg.cond_aug), polar, azimuth], axis=-1)
        return torch.from_numpy(ids).float()[None].to(self.device)

    @torch.no_grad()
    def _encode(self, rgb: np.ndarray, generator: torch.Generator) -> _Conditioning:
        """CLIP embedding of the clean input and VAE latent of the input plus cond_aug noise (as SGM)."""
        models, cfg = self.models, self.config
        image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() * 2.0 - 1.0  # (1, 3, S, S) in [-1, 1]
        with self._on_device(models.image_encoder):
            clip_size = models.image_encoder.config.image_size
            pixels = F.interpolate(
                (image + 1.0) / 2.0, size=(clip_size, clip_size), mode="bicubic", antialias=True, align_corners=False
            )
            mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
            pixels = ((pixels - mean) / std).to(self.device, self.dtype)
            clip = models.image_encoder(pixel_values=pixels).image_embeds[:, None]
        noisy = image + cfg.cond_aug * torch.randn(image.shape, generator=generator)
        with self._on_device(models.vae):
            vae_dtype = next(models.vae.parameters()).dtype
            latent = models.vae.encode(noisy.to(self.device, vae_dtype)).latent_dist.mode()
        return _Conditioning(
            clip.to(self.device, self.dtype), latent.to(self.device, torch.float32), self._camera_ids()
        )

    @torch.no_grad()
    def _sample(
        self, cond: _Conditioning, generator: torch.Generator, progress: Progress
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Euler EDM sampling; returns final latents (T, 4, h, w) float32 and tapped features
        {name: (T, C, h_l, w_l)}."""
        cfg, unet = self.config, self.models.unet
        frames, size = cfg.num_frames, cfg.latent_size
        sigmas = edm_sigmas(cfg.num_steps, cfg.sigma_min, cfg.sigma_max)
        tap_step = nearest_step(sigmas, cfg.tap_noise_level())
        scales = torch.from_numpy(triangle_guidance(frames, cfg.min_guidance, cfg.max_guidance)).float()
        x = initial_noise((1, frames, 4, size, size), cfg.sigma_max, generator, self.device, torch.float32)
        cond_latent = cond.latent[:, None].expand(1, frames, -1, -1, -1)
        halves = [  # (context, concat latent); SGM's unconditional branch zeros only the image conditions
            (torch.zeros_like(cond.clip), torch.zeros_like(cond_latent)),
            (cond.clip, cond_latent),
        ]
        with self._on_device(unet), FeatureTaps(unet, cfg.taps) as taps:
            for step in range(cfg.num_steps):
                progress.update(step / cfg.num_steps, f"denoising step {step + 1}/{cfg.num_steps}")
                sigma, sigma_next = float(sigmas[step]), float(sigmas[step + 1])
                v_uncond, v_cond = self._guided_v(unet, x, sigma, halves, cond.camera_ids, taps, tap=step == tap_step)
                denoised = denoised_from_v(x, cfg_combine(v_uncond, v_cond, scales), sigma)
                x = euler_step(x, denoised, sigma, sigma_next)
            progress.update(1.0, "denoised")
        return x[0], taps.features

    def _guided_v(
        self, unet, x, sigma, halves, camera_ids, taps: FeatureTaps, tap: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """v-predictions of the unconditional and conditional halves (B=1 each), tapping the cond half if `tap`."""
        frames = x.shape[1]
        scaled = (x / np.sqrt(sigma**2 + 1.0)).to(self.dtype)  # c_in
        c_noise = torch.tensor([0.25 * np.log(sigma)], device=self.device)
        inputs = [torch.cat([scaled, latent.to(self.dtype)], dim=2) for _, latent in halves]
        contexts = [context for context, _ in halves]
        cond_rows = torch.arange(frames)
        if self.config.guidance_batched:
            taps.rows = cond_rows + frames if tap else None  # batch = [uncond frames, cond frames]
            v = unet(torch.cat(inputs), c_noise, torch.cat(contexts), camera_ids.expand(2, -1, -1))[0]
            return v[:1].float(), v[1:].float()
        taps.rows = None
        v_uncond = unet(inputs[0], c_noise, contexts[0], camera_ids)[0]
        taps.rows = cond_rows if tap else None
        v_cond = unet(inputs[1], c_noise, contexts[1], camera_ids)[0]
        taps.rows = None
        return v_uncond.float(), v_cond.float()

    @torch.no_grad()
    def _decode(self, latents: torch.Tensor, progress: Progress) -> np.ndarray:
        """(T, 4, h, w) latents -> (T, S, S, 3) float32 images in [0, 1], `decode_chunk` frames at a time."""
        vae = self.models.vae
        chunk = max(1, self.config.decode_chunk)
        out = []
        with self._on_device(vae):
            vae_dtype = next(vae.parameters()).dtype
            scaled = latents / vae.config.scaling_factor
            for start in range(0, len(scaled), chunk):
                progress.update(start / len(scaled), f"decoding frames {start + 1}-{min(start + chunk, len(scaled))}")
                part = scaled[start : start + chunk].to(self.device, vae_dtype)
                temporal = "num_frames" in inspect.signature(vae.decode).parameters  # video decoder vs image VAE
                frames = (vae.decode(part, num_frames=len(part)) if temporal else vae.decode(part)).sample
                out.append(((frames.float() + 1.0) / 2.0).clamp(0.0, 1.0).permute(0, 2, 3, 1).cpu())
        progress.update(1.0, "decoded")
        return torch.cat(out).numpy()
