"""Tiny random-weight SV3D-p files in the real formats, for tests and CPU end-to-end runs.

`write_tiny_sv3d_checkpoint` writes an `sv3d_p.safetensors`-style file (original SGM key names under
`model.diffusion_model.`) plus an SVD-xt-style diffusers folder (`vae/`, `image_encoder/`); loading
them goes through exactly the code path of the real files (key conversion, cached copy, diffusers
and transformers loaders). Only the widths are small; the block structure is SV3D-p's.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ...networks.sv3d_convert import unet_to_sgm
from ...networks.sv3d_unet import SV3DUNet, sv3d_unet_config
from .generator import RuntimeOptions, SV3DConfig, SV3DGenerator
from .loading import SV3DModels, load_sv3d_models

TINY_CHANNELS = (32, 32, 64, 64)
TINY_CONTEXT = 32
TINY_VAE = {
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "block_out_channels": (32,) * 4,
    "layers_per_block": 1,
    "latent_channels": 4,
    "sample_size": 64,
}
TINY_CLIP = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 8,
    "projection_dim": TINY_CONTEXT,
}


@dataclass(frozen=True)
class TinySV3DFiles:
    sv3d: Path  # SGM-format safetensors
    svd_xt: Path  # diffusers folder with vae/ and image_encoder/


def tiny_unet(seed: int = 0) -> SV3DUNet:
    torch.manual_seed(seed)
    return SV3DUNet.from_config(sv3d_unet_config(TINY_CHANNELS, cross_attention_dim=TINY_CONTEXT, sample_size=8))


def svd_xt_vae_config() -> dict:
    """SVD-xt's AutoencoderKLTemporalDecoder config (the VAE SV3D-p uses)."""
    return {
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "block_out_channels": (128, 256, 512, 512),
        "layers_per_block": 2,
        "latent_channels": 4,
        "sample_size": 768,
        "scaling_factor": 0.18215,
    }


def random_sv3d_models(
    full_size: bool, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> SV3DModels:
    """SV3D-p's networks with random weights, built directly on `device` (benchmarks: the full size needs CUDA).

    full_size: the released architecture (1.5 B U-Net, SVD-xt VAE, OpenCLIP ViT-H/14 image tower);
    otherwise the tiny widths used by the tests.
    """
    from diffusers import AutoencoderKLTemporalDecoder
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    with torch.device(device):
        if full_size:
            unet = SV3DUNet.from_config(sv3d_unet_config())
            vae = AutoencoderKLTemporalDecoder(**svd_xt_vae_config())
            clip = CLIPVisionModelWithProjection(
                CLIPVisionConfig(
                    hidden_size=1280,
                    intermediate_size=5120,
                    num_hidden_layers=32,
                    num_attention_heads=16,
                    image_size=224,
                    patch_size=14,
                    projection_dim=1024,
                    hidden_act="gelu",
                )
            )
        else:
            unet = tiny_unet(seed)
            vae = AutoencoderKLTemporalDecoder(**TINY_VAE)
            clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_CLIP))
    return SV3DModels(unet, vae, clip).to(device, dtype)


def write_tiny_svd_xt(folder: Path, seed: int = 0) -> Path:
    """An SVD-xt-style diffusers folder with a tiny AutoencoderKLTemporalDecoder (factor 8) and CLIP image
    encoder."""
    from diffusers import AutoencoderKLTemporalDecoder
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    vae = AutoencoderKLTemporalDecoder(**TINY_VAE)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_CLIP))
    vae.save_pretrained(folder / "vae")
    encoder.save_pretrained(folder / "image_encoder")
    return folder


def write_tiny_sv3d_checkpoint(path: str | Path, svd_xt: str | Path | None = None, seed: int = 0) -> TinySV3DFiles:
    """Write a tiny `sv3d_p.safetensors` (SGM keys) at `path` and an SVD-xt folder
    (default: `<path dir>/tiny-svd-xt`)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    unet = tiny_unet(seed)
    state = unet_to_sgm({k: v.contiguous() for k, v in unet.state_dict().items()}, unet.config.layers_per_block)
    save_file(state, str(path), metadata={"format": "pt"})
    folder = Path(svd_xt) if svd_xt is not None else path.parent / "tiny-svd-xt"
    write_tiny_svd_xt(folder, seed)
    return TinySV3DFiles(path, folder)


def tiny_sv3d_generator(
    root: str | Path | None = None, *, size: int = 64, num_steps: int = 3, num_frames: int = 21, **config
) -> SV3DGenerator:
    """A CPU SV3D generator with tiny random weights, loaded through the real file formats.

    root: folder for the files (a fresh temporary folder if None); extra keywords go to SV3DConfig.
    """
    root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="keydiff3d-tiny-sv3d-"))
    files = write_tiny_sv3d_checkpoint(root / "sv3d_p.safetensors")
    models = load_sv3d_models(files.sv3d, files.svd_xt, cache_dir=root / "converted")
    cfg = SV3DConfig(size=size, num_steps=num_steps, num_frames=num_frames, decode_chunk=num_frames, **config)
    return SV3DGenerator(models, cfg, RuntimeOptions(device="cpu", dtype="fp32"))
