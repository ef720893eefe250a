"""SV3D-p's spatio-temporal U-Net: diffusers' SVD U-Net with SV3D's per-frame camera conditioning.

SV3D-p conditions every frame on its own camera, so unlike SVD (one `added_time_ids` row per video)
the time embedding and the "vector" embedding are computed per frame:

    vector_f = [sinusoid_256(cond_aug), sinusoid_512(polar_rad_f), sinusoid_512(azimuth_rad_f)]  (1280)
    emb_f    = time_embedding(sinusoid_320(c_noise)) + add_embedding(vector_f)

The parameters are exactly those of `UNetSpatioTemporalConditionModel` with
`projection_class_embeddings_input_dim = 1280` (the sinusoids have no weights), so a diffusers-format
SV3D U-Net directory loads into this class unchanged and SGM's `label_emb.0.*` maps onto
`add_embedding.*`.
"""

from __future__ import annotations

import torch
from diffusers.models.embeddings import get_timestep_embedding
from diffusers.models.unets.unet_spatio_temporal_condition import UNetSpatioTemporalConditionModel

COND_AUG_DIM = 256  # SGM ConcatTimestepEmbedderND outdim for cond_aug
ANGLE_DIM = 512  # ... for polars_rad and azimuths_rad


def sv3d_unet_config(
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
    *,
    cross_attention_dim: int = 1024,
    head_channels: int = 64,
    layers_per_block: int = 2,
    num_frames: int = 21,
    sample_size: int = 72,
) -> dict:
    """The diffusers config of the SV3D-p U-Net (defaults = the released model, sv3d_p.yaml).

    SGM specifies `num_head_channels: 64`; diffusers wants heads per level, hence `channels // 64`.
    """
    return {
        "sample_size": sample_size,
        "in_channels": 8,  # noisy latent (4) + the input view's VAE latent (4)
        "out_channels": 4,
        "down_block_types": ("CrossAttnDownBlockSpatioTemporal",) * 3 + ("DownBlockSpatioTemporal",),
        "up_block_types": ("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * 3,
        "block_out_channels": tuple(block_out_channels),
        "addition_time_embed_dim": COND_AUG_DIM,
        "projection_class_embeddings_input_dim": COND_AUG_DIM + 2 * ANGLE_DIM,
        "layers_per_block": layers_per_block,
        "cross_attention_dim": cross_attention_dim,
        "transformer_layers_per_block": 1,
        "num_attention_heads": tuple(max(1, c // head_channels) for c in block_out_channels),
        "num_frames": num_frames,
    }


def camera_vector(cond_aug: torch.Tensor, polar_rad: torch.Tensor, azimuth_rad: torch.Tensor) -> torch.Tensor:
    """SGM's 1280-d "vector" condition per frame. Inputs (N,) each; returns (N, 1280) float32.

    Each part is SGM's `timestep_embedding` (cos first, max period 10000), which is diffusers'
    `get_timestep_embedding(flip_sin_to_cos=True, downscale_freq_shift=0)`.
    """
    parts = [
        get_timestep_embedding(cond_aug.float(), COND_AUG_DIM, flip_sin_to_cos=True, downscale_freq_shift=0),
        get_timestep_embedding(polar_rad.float(), ANGLE_DIM, flip_sin_to_cos=True, downscale_freq_shift=0),
        get_timestep_embedding(azimuth_rad.float(), ANGLE_DIM, flip_sin_to_cos=True, downscale_freq_shift=0),
    ]
    return torch.cat(parts, dim=-1)


class SV3DUNet(UNetSpatioTemporalConditionModel):
    """`UNetSpatioTemporalConditionModel` whose forward takes per-frame cameras (see module docstring)."""

    def forward(  # type: ignore[override]
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        return_dict: bool = False,
    ) -> tuple[torch.Tensor]:
        """One denoiser evaluation.

        sample: (B, T, 8, h, w) scaled noisy latents concatenated with the input view's latent.
        timestep: (B,) or scalar c_noise (= 0.25 ln sigma for SV3D's EDM scaling).
        encoder_hidden_states: (B, 1, D) CLIP image embedding (zeros for the unconditional half).
        added_time_ids: (B, T, 3) per frame [cond_aug, polar_rad, azimuth_rad].
        Returns a 1-tuple with the v-prediction (B, T, 4, h, w).
        """
        batch, frames = sample.shape[:2]
        if added_time_ids.shape != (batch, frames, 3):
            raise ValueError(
                f"added_time_ids must be (B, T, 3) = ({batch}, {frames}, 3), got {tuple(added_time_ids.shape)}"
            )
        timestep = torch.as_tensor(timestep, device=sample.device, dtype=torch.float32).reshape(-1).expand(batch)
        t_emb = self.time_proj(timestep.repeat_interleave(frames)).to(sample.dtype)
        ids = added_time_ids.reshape(batch * frames, 3)
        vector = camera_vector(ids[:, 0], ids[:, 1], ids[:, 2]).to(sample.dtype)
        emb = self.time_embedding(t_emb) + self.add_embedding(vector)  # (B*T, time_embed_dim)

        hidden = self.conv_in(sample.flatten(0, 1))
        context = encoder_hidden_states.repeat_interleave(frames, dim=0)
        image_only_indicator = torch.zeros(batch, frames, dtype=hidden.dtype, device=hidden.device)
        common = {"temb": emb, "image_only_indicator": image_only_indicator}

        skips: tuple[torch.Tensor, ...] = (hidden,)
        for block in self.down_blocks:
            extra = {"encoder_hidden_states": context} if getattr(block, "has_cross_attention", False) else {}
            hidden, res = block(hidden_states=hidden, **common, **extra)
            skips += res

        hidden = self.mid_block(hidden_states=hidden, encoder_hidden_states=context, **common)

        for block in self.up_blocks:
            res, skips = skips[-len(block.resnets) :], skips[: -len(block.resnets)]
            # odd latent sizes: make each upsampler hit the size of the matching skip exactly
            upsample_size = skips[-1].shape[2:] if skips else None
            extra = {"encoder_hidden_states": context} if getattr(block, "has_cross_attention", False) else {}
            hidden = block(
                hidden_states=hidden, res_hidden_states_tuple=res, upsample_size=upsample_size, **common, **extra
            )

        out = self.conv_out(self.conv_act(self.conv_norm_out(hidden)))
        return (out.reshape(batch, frames, *out.shape[1:]),)
