"""SGM <-> diffusers key conversion of the SV3D-p U-Net, loading of the original file format, cached copy."""

import pytest
import torch
from accelerate import init_empty_weights
from safetensors.torch import load_file, save_file

from keydiff3d.errors import MissingWeightsError
from keydiff3d.multiview.sv3d.loading import load_sgm_unet
from keydiff3d.multiview.sv3d.testing import tiny_unet, write_tiny_sv3d_checkpoint
from keydiff3d.networks.sv3d_convert import SGM_UNET_PREFIX, convert_sgm_unet, unet_config_from_sgm, unet_to_sgm
from keydiff3d.networks.sv3d_unet import SV3DUNet, sv3d_unet_config
from keydiff3d.weights import validate_sv3d

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def full_size_shapes():
    with init_empty_weights():
        unet = SV3DUNet.from_config(sv3d_unet_config())
    return {k: tuple(v.shape) for k, v in unet.state_dict().items()}


def test_full_size_unet_has_sv3d_p_dimensions(full_size_shapes):
    assert sum(torch.Size(s).numel() for s in full_size_shapes.values()) == pytest.approx(1.525e9, rel=0.01)
    assert full_size_shapes["add_embedding.linear_1.weight"] == (1280, 1280)  # 256 + 512 + 512 camera vector
    assert full_size_shapes["conv_in.weight"] == (320, 8, 3, 3)


def test_conversion_is_a_bijection_onto_known_sgm_names(full_size_shapes):
    meta = {k: torch.empty(s, device="meta") for k, s in full_size_shapes.items()}
    sgm = unet_to_sgm(meta, layers_per_block=2)
    assert len(sgm) == len(meta)
    # names of the original VideoUNet layout (OpenAI block numbering, time_stack / time_mixer parts)
    for name, shape in {
        "label_emb.0.0.weight": (1280, 1280),
        "time_embed.0.weight": (1280, 320),
        "input_blocks.0.0.weight": (320, 8, 3, 3),
        "input_blocks.1.0.time_stack.in_layers.2.weight": (320, 320, 3, 1, 1),
        "input_blocks.1.1.time_pos_embed.0.weight": (1280, 320),
        "input_blocks.3.0.op.weight": (320, 320, 3, 3),
        "input_blocks.4.0.skip_connection.weight": (640, 320, 1, 1),
        "middle_block.1.time_stack.0.attn1.to_q.weight": (1280, 1280),
        "middle_block.2.time_mixer.mix_factor": (1,),
        "output_blocks.2.1.conv.weight": (1280, 1280, 3, 3),  # level without attention: upsampler at .1
        "output_blocks.5.2.conv.weight": (1280, 1280, 3, 3),  # level with attention: upsampler at .2
        "output_blocks.11.1.proj_out.weight": (320, 320),
        "out.2.weight": (4, 320, 3, 3),
    }.items():
        assert tuple(sgm[SGM_UNET_PREFIX + name].shape) == shape, name
    back = convert_sgm_unet(sgm, layers_per_block=2)
    assert {k: tuple(v.shape) for k, v in back.items()} == full_size_shapes
    assert unet_config_from_sgm({k[len(SGM_UNET_PREFIX) :]: v for k, v in sgm.items()}) == sv3d_unet_config()


def test_tiny_checkpoint_loads_through_conversion_and_cache(tmp_path):
    files = write_tiny_sv3d_checkpoint(tmp_path / "sv3d_p.safetensors", seed=3)
    raw = load_file(str(files.sv3d))
    assert all(k.startswith(SGM_UNET_PREFIX) for k in raw) and SGM_UNET_PREFIX + "label_emb.0.0.weight" in raw
    reference = tiny_unet(seed=3).state_dict()

    unet = load_sgm_unet(files.sv3d, tmp_path / "converted")
    for name, tensor in unet.state_dict().items():
        assert torch.equal(tensor, reference[name]), name
    cached = list((tmp_path / "converted").iterdir())
    assert len(cached) == 1 and (cached[0] / "config.json").exists()

    again = load_sgm_unet(files.sv3d, tmp_path / "converted")  # served from the converted copy
    assert all(torch.equal(v, reference[k]) for k, v in again.state_dict().items())


def test_wrong_checkpoints_are_rejected_before_loading(tmp_path):
    files = write_tiny_sv3d_checkpoint(tmp_path / "sv3d_p.safetensors")
    assert "U-Net" in validate_sv3d(files.sv3d)
    state = load_file(str(files.sv3d))

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(files.sv3d.read_bytes()[:-1000])
    with pytest.raises(MissingWeightsError, match="truncated"):
        validate_sv3d(truncated)

    missing = dict(state)
    missing.pop(SGM_UNET_PREFIX + "output_blocks.4.1.proj_in.weight")
    wrong_keys = tmp_path / "wrong_keys.safetensors"
    save_file(missing, str(wrong_keys))
    with pytest.raises(MissingWeightsError, match="wrong key set"):
        validate_sv3d(wrong_keys)
    with pytest.raises(MissingWeightsError):
        load_sgm_unet(wrong_keys, tmp_path / "c2")

    svd_like = dict(state)  # SVD's U-Net: 768-d (fps, motion, noise) conditioning instead of 1280
    svd_like[SGM_UNET_PREFIX + "label_emb.0.0.weight"] = torch.zeros(128, 768)
    svd_file = tmp_path / "svd.safetensors"
    save_file(svd_like, str(svd_file))
    with pytest.raises(MissingWeightsError, match="SVD"):
        validate_sv3d(svd_file)

    not_safetensors = tmp_path / "junk.safetensors"
    not_safetensors.write_bytes(b"\x00" * 64)
    with pytest.raises(MissingWeightsError):
        validate_sv3d(not_safetensors)


def test_diffusers_folder_with_its_own_vae_and_encoder_loads(tmp_path):
    """Layout (b): a diffusers SV3D folder (unet/, vae/ - here a plain AutoencoderKL as ports ship it -
    image_encoder/)."""
    import shutil

    import numpy as np
    from diffusers import AutoencoderKL

    from keydiff3d import weights
    from keydiff3d.multiview.sv3d import RuntimeOptions, SV3DConfig, SV3DGenerator, load_sv3d_models

    files = write_tiny_sv3d_checkpoint(tmp_path / "sgm.safetensors")
    folder = tmp_path / "sv3d-diffusers"
    tiny_unet(seed=5).save_pretrained(folder / "unet")
    shutil.copytree(files.svd_xt / "image_encoder", folder / "image_encoder")
    AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(32,) * 4,
        layers_per_block=1,
    ).save_pretrained(folder / "vae")
    assert weights.validate_sv3d(folder) == "diffusers folder" and weights.sv3d_has_components(folder)

    models = load_sv3d_models(folder)
    reference = tiny_unet(seed=5).state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in models.unet.state_dict().items())
    rgba = np.zeros((40, 40, 4), np.float32)
    rgba[8:32, 12:28] = [0.4, 0.6, 0.2, 1.0]
    result = SV3DGenerator(models, SV3DConfig(size=64, num_steps=1), RuntimeOptions(device="cpu")).from_image(rgba)
    assert result.images.shape == (21, 64, 64, 3) and np.isfinite(result.images).all()
