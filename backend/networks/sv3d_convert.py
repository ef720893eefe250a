"""Original SGM (`sv3d_p.safetensors`) U-Net keys <-> diffusers `SV3DUNet` keys.

SGM's VideoUNet stores the U-Net under `model.diffusion_model.` with OpenAI-U-Net block numbering:
`input_blocks.0` is conv_in, then per level `layers_per_block` x [resblock (.0), attention (.1)]
and one downsampler (`.0.op`); `middle_block.{0,1,2}`; `output_blocks` hold per level
`layers_per_block + 1` x [resblock, attention] with the upsampler conv last in the level's final
block. Inside blocks, the temporal parts are `time_stack` and `time_mixer`, and ResBlock layers are
`in_layers/out_layers/emb_layers/skip_connection`. The mapping is a bijection of names (tensor
shapes are identical), so the same tables convert in both directions: load time (SGM -> diffusers)
and the test helpers that write checkpoints in the original layout (diffusers -> SGM).
"""

from __future__ import annotations

import re

import torch

SGM_UNET_PREFIX = "model.diffusion_model."

_TOP_LEVEL = {
    "time_embed.0": "time_embedding.linear_1",
    "time_embed.2": "time_embedding.linear_2",
    "label_emb.0.0": "add_embedding.linear_1",
    "label_emb.0.2": "add_embedding.linear_2",
    "input_blocks.0.0": "conv_in",
    "out.0": "conv_norm_out",
    "out.2": "conv_out",
}
_RESNET_LAYERS = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "emb_layers.1": "time_emb_proj",
    "skip_connection": "conv_shortcut",
}
_ATTENTION_PARTS = {
    "time_stack": "temporal_transformer_blocks",
    "time_pos_embed.0": "time_pos_embed.linear_1",
    "time_pos_embed.2": "time_pos_embed.linear_2",
}


def _swap_prefix(name: str, table: dict[str, str]) -> str:
    for old, new in table.items():
        if name == old or name.startswith(old + "."):
            return new + name[len(old) :]
    return name


def _resnet_to_diffusers(rest: str) -> str:
    if rest == "time_mixer.mix_factor":
        return rest
    if rest.startswith("time_stack."):
        return "temporal_res_block." + _swap_prefix(rest[len("time_stack.") :], _RESNET_LAYERS)
    return "spatial_res_block." + _swap_prefix(rest, _RESNET_LAYERS)


def _resnet_to_sgm(rest: str) -> str:
    inverse = {v: k for k, v in _RESNET_LAYERS.items()}
    if rest == "time_mixer.mix_factor":
        return rest
    if rest.startswith("temporal_res_block."):
        return "time_stack." + _swap_prefix(rest[len("temporal_res_block.") :], inverse)
    if rest.startswith("spatial_res_block."):
        return _swap_prefix(rest[len("spatial_res_block.") :], inverse)
    raise KeyError(rest)


def sgm_to_diffusers_key(key: str, layers_per_block: int) -> str:
    """Diffusers name of one SGM U-Net parameter (without the `model.diffusion_model.` prefix)."""
    for old, new in _TOP_LEVEL.items():
        if key.startswith(old + "."):
            return new + key[len(old) :]
    per_level = layers_per_block + 1
    if m := re.fullmatch(r"input_blocks\.(\d+)\.(\d)\.(.+)", key):
        index, part, rest = int(m[1]), int(m[2]), m[3]
        level, j = divmod(index - 1, per_level)
        if j == layers_per_block:  # the level's downsampler
            return f"down_blocks.{level}.downsamplers.0.conv." + rest.removeprefix("op.")
        if part == 0:
            return f"down_blocks.{level}.resnets.{j}." + _resnet_to_diffusers(rest)
        return f"down_blocks.{level}.attentions.{j}." + _swap_prefix(rest, _ATTENTION_PARTS)
    if m := re.fullmatch(r"middle_block\.(\d)\.(.+)", key):
        part, rest = int(m[1]), m[2]
        if part == 1:
            return "mid_block.attentions.0." + _swap_prefix(rest, _ATTENTION_PARTS)
        return f"mid_block.resnets.{part // 2}." + _resnet_to_diffusers(rest)
    if m := re.fullmatch(r"output_blocks\.(\d+)\.(\d)\.(.+)", key):
        index, part, rest = int(m[1]), int(m[2]), m[3]
        level, j = divmod(index, per_level)
        if part == 0:
            return f"up_blocks.{level}.resnets.{j}." + _resnet_to_diffusers(rest)
        if re.fullmatch(r"conv\.(weight|bias)", rest):  # attention modules have no `conv` child
            return f"up_blocks.{level}.upsamplers.0." + rest
        return f"up_blocks.{level}.attentions.{j}." + _swap_prefix(rest, _ATTENTION_PARTS)
    raise KeyError(f"unexpected SV3D U-Net key {key!r}")


def diffusers_to_sgm_key(key: str, layers_per_block: int, attention_levels: set[int]) -> str:
    """Inverse of `sgm_to_diffusers_key`; `attention_levels` = up-block indices with attentions."""
    for old, new in _TOP_LEVEL.items():
        if key.startswith(new + "."):
            return old + key[len(new) :]
    per_level = layers_per_block + 1
    inverse_attention = {v: k for k, v in _ATTENTION_PARTS.items()}
    if m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions|downsamplers)\.(\d+)\.(.+)", key):
        level, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        if kind == "downsamplers":
            return f"input_blocks.{1 + level * per_level + layers_per_block}.0.op." + rest.removeprefix("conv.")
        index = 1 + level * per_level + j
        if kind == "resnets":
            return f"input_blocks.{index}.0." + _resnet_to_sgm(rest)
        return f"input_blocks.{index}.1." + _swap_prefix(rest, inverse_attention)
    if m := re.fullmatch(r"mid_block\.(resnets|attentions)\.(\d)\.(.+)", key):
        kind, j, rest = m[1], int(m[2]), m[3]
        if kind == "attentions":
            return "middle_block.1." + _swap_prefix(rest, inverse_attention)
        return f"middle_block.{2 * j}." + _resnet_to_sgm(rest)
    if m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions|upsamplers)\.(\d+)\.(.+)", key):
        level, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        if kind == "upsamplers":
            part = 2 if level in attention_levels else 1
            return f"output_blocks.{level * per_level + layers_per_block}.{part}." + rest
        index = level * per_level + j
        if kind == "resnets":
            return f"output_blocks.{index}.0." + _resnet_to_sgm(rest)
        return f"output_blocks.{index}.1." + _swap_prefix(rest, inverse_attention)
    raise KeyError(f"unexpected diffusers U-Net key {key!r}")


def unet_config_from_sgm(state: dict[str, torch.Tensor], num_frames: int = 21) -> dict:
    """The `SV3DUNet` config implied by an SGM U-Net state dict (keys without prefix).

    Everything but the head count is readable from tensor shapes; heads follow SGM's
    `num_head_channels: 64` (sv3d_p.yaml), so `channels // 64` per level.
    """
    from .sv3d_unet import sv3d_unet_config

    first_level_blocks = {int(m[1]) for k in state if (m := re.match(r"input_blocks\.(\d+)\.", k))}
    downsamplers = sorted(int(m[1]) for k in state if (m := re.match(r"input_blocks\.(\d+)\.0\.op\.weight$", k)))
    if not downsamplers:
        raise KeyError("no downsampler (input_blocks.N.0.op.weight) found")
    layers_per_block = downsamplers[0] - 1
    levels = len(downsamplers) + 1
    if max(first_level_blocks) != levels * (layers_per_block + 1) - 1:
        raise KeyError("the input blocks do not form a regular U-Net")
    channels = tuple(
        int(state[f"input_blocks.{1 + level * (layers_per_block + 1)}.0.in_layers.2.weight"].shape[0])
        for level in range(levels)
    )
    cross = int(state["input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"].shape[1])
    return sv3d_unet_config(
        channels, cross_attention_dim=cross, layers_per_block=layers_per_block, num_frames=num_frames
    )


def convert_sgm_unet(checkpoint: dict[str, torch.Tensor], layers_per_block: int) -> dict[str, torch.Tensor]:
    """SGM checkpoint (full, with the `model.diffusion_model.` prefix; other parts ignored) -> diffusers U-Net
    state dict."""
    return {
        sgm_to_diffusers_key(key[len(SGM_UNET_PREFIX) :], layers_per_block): tensor
        for key, tensor in checkpoint.items()
        if key.startswith(SGM_UNET_PREFIX)
    }


def unet_to_sgm(unet_state: dict[str, torch.Tensor], layers_per_block: int) -> dict[str, torch.Tensor]:
    """Diffusers U-Net state dict -> SGM keys with the `model.diffusion_model.` prefix."""
    attention_levels = {int(m[1]) for k in unet_state if (m := re.match(r"up_blocks\.(\d+)\.attentions\.", k))}
    return {
        SGM_UNET_PREFIX + diffusers_to_sgm_key(k, layers_per_block, attention_levels): v for k, v in unet_state.items()
    }
