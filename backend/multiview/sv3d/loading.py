"""Loading SV3D-p's three networks from user files.

Accepted layouts (see docs/SV3D.md):
- the original `sv3d_p.safetensors` (SGM key names): the U-Net is converted at load time and a
  converted diffusers copy is cached, so later loads skip the conversion;
- a diffusers-format SV3D directory (`unet/`, optionally `vae/` and `image_encoder/`).
The VAE (AutoencoderKLTemporalDecoder, SV3D-p's video decoder; a plain AutoencoderKL as some
diffusers ports ship is accepted too) and the CLIP image encoder (CLIPVisionModelWithProjection)
come from the SV3D directory when it has them, else from an SVD-xt diffusers directory.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ...errors import MissingWeightsError
from ...networks.sv3d_convert import SGM_UNET_PREFIX, convert_sgm_unet, unet_config_from_sgm
from ...networks.sv3d_unet import SV3DUNet

if TYPE_CHECKING:  # heavy imports stay lazy at run time
    from diffusers import AutoencoderKL, AutoencoderKLTemporalDecoder
    from transformers import CLIPVisionModelWithProjection

log = logging.getLogger(__name__)


@dataclass
class SV3DModels:
    unet: SV3DUNet
    vae: AutoencoderKLTemporalDecoder | AutoencoderKL
    image_encoder: CLIPVisionModelWithProjection

    def to(self, device: torch.device | str, dtype: torch.dtype) -> "SV3DModels":
        for module in (self.unet, self.vae, self.image_encoder):
            module.to(device).eval().requires_grad_(False)
            if next(module.parameters()).dtype != dtype:
                module.to(dtype)
        return self


def default_convert_cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "keydiff3d" / "converted"


def _cache_key(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha1(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]


def load_sgm_unet(path: Path, cache_dir: Path | None = None, dtype: torch.dtype = torch.float32) -> SV3DUNet:
    """The U-Net of an original SGM checkpoint; the converted copy is cached under `cache_dir`."""
    from accelerate import init_empty_weights
    from safetensors import safe_open

    cache_dir = cache_dir or default_convert_cache()
    cached = cache_dir / f"sv3d_unet-{_cache_key(path)}"
    if (cached / "config.json").exists():
        log.info("loading the converted SV3D U-Net cached at %s", cached)
        return SV3DUNet.from_pretrained(cached, torch_dtype=dtype)

    with safe_open(str(path), framework="pt") as f:
        checkpoint = {k: f.get_tensor(k) for k in f.keys() if k.startswith(SGM_UNET_PREFIX)}
    bare = {k[len(SGM_UNET_PREFIX) :]: v for k, v in checkpoint.items()}
    try:
        config = unet_config_from_sgm(bare)
        state = convert_sgm_unet(checkpoint, config["layers_per_block"])
    except KeyError as error:
        raise MissingWeightsError(
            f"{path} is not an SV3D-p checkpoint ({error.args[0]}); use the original sv3d_p.safetensors"
        ) from error
    with init_empty_weights():
        unet = SV3DUNet.from_config(config)
    expected = set(unet.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        example = (missing or unexpected)[0]
        raise MissingWeightsError(
            f"{path} does not match the SV3D-p U-Net ({len(missing)} missing, {len(unexpected)} unexpected tensors, "
            f"e.g. {example}); use the original sv3d_p.safetensors"
        )
    unet.load_state_dict(state, strict=True, assign=True)
    unet.to(dtype)
    _save_atomically(unet, cached)
    return unet


def _save_atomically(unet: SV3DUNet, target: Path) -> None:
    """Write the converted copy next to its final place and rename, so a crash never leaves half a cache."""
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    try:
        unet.save_pretrained(tmp)
        tmp.rename(target)
        log.info("cached the converted SV3D U-Net at %s", target)
    except OSError as error:  # a read-only cache only costs the conversion next time
        log.warning("could not cache the converted U-Net at %s: %s", target, error)
        shutil.rmtree(tmp, ignore_errors=True)


def _variant(folder: Path) -> str | None:
    """ "fp16" when a folder only holds the half-precision files (`*.fp16.safetensors`, as Hugging Face ships them)."""
    full = list(folder.glob("*.safetensors")) + list(folder.glob("*.bin"))
    return "fp16" if full and all(".fp16." in f.name for f in full) else None


def _component_dir(name: str, *candidates: Path | None) -> Path:
    for root in candidates:
        if root is not None and (root / name / "config.json").exists():
            return root / name
    raise MissingWeightsError(
        f"no `{name}/` folder found in {', '.join(str(c) for c in candidates if c) or 'any weights folder'}; "
        "download stabilityai/stable-video-diffusion-img2vid-xt and set KEYDIFF3D_SVD_XT to its folder"
    )


def load_sv3d_models(
    sv3d: Path, svd_xt: Path | None = None, *, dtype: torch.dtype = torch.float32, cache_dir: Path | None = None
) -> SV3DModels:
    """U-Net from `sv3d` (SGM file or diffusers dir); VAE and CLIP from `sv3d` if present, else `svd_xt`."""
    import json

    from diffusers import AutoencoderKL, AutoencoderKLTemporalDecoder
    from transformers import CLIPVisionModelWithProjection

    sv3d = Path(sv3d)
    if sv3d.is_file():
        unet = load_sgm_unet(sv3d, cache_dir, dtype)
        sv3d_dir = None
    else:
        unet_dir = sv3d / "unet" if (sv3d / "unet" / "config.json").exists() else sv3d
        if not (unet_dir / "config.json").exists():
            raise MissingWeightsError(
                f"{sv3d} is neither sv3d_p.safetensors nor a diffusers SV3D folder with unet/config.json"
            )
        unet = SV3DUNet.from_pretrained(unet_dir, torch_dtype=dtype, variant=_variant(unet_dir))
        sv3d_dir = sv3d
    vae_dir, encoder_dir = _component_dir("vae", sv3d_dir, svd_xt), _component_dir("image_encoder", sv3d_dir, svd_xt)
    vae_class = json.loads((vae_dir / "config.json").read_text()).get("_class_name")
    vae_type = AutoencoderKL if vae_class == "AutoencoderKL" else AutoencoderKLTemporalDecoder
    vae = vae_type.from_pretrained(vae_dir, torch_dtype=dtype, variant=_variant(vae_dir))
    image_encoder = CLIPVisionModelWithProjection.from_pretrained(
        encoder_dir, dtype=dtype, variant=_variant(encoder_dir)
    )
    if image_encoder.config.projection_dim != unet.config.cross_attention_dim:
        raise MissingWeightsError(
            f"the image encoder gives {image_encoder.config.projection_dim}-d embeddings but the U-Net expects "
            f"{unet.config.cross_attention_dim}; use SVD-xt's image_encoder"
        )
    return SV3DModels(unet, vae, image_encoder).to("cpu", dtype)
