"""Pipeline inputs and options: images are accepted exactly when they decode, within limits
(meshes: test_mesh_io.py)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from pipeline_support import png_bytes

from keydiff3d.errors import DeviceError, InputError, TooLargeError, UnsupportedFormatError
from keydiff3d.image_io import load_image
from keydiff3d.pipeline.options import PipelineOptions


def bomb_png(side: int = 20000) -> bytes:
    """A valid PNG header claiming side x side pixels with a tiny, highly compressed body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = zlib.compress((b"\x00" + b"\x00" * side) * 64, 9)  # only the first rows: the header is what matters
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


# --------------------------------------------------------------------------- images


def test_rgba_png_keeps_alpha_and_values():
    rgba = load_image(png_bytes(64, 48))
    assert rgba.shape == (48, 64, 4) and rgba.dtype == np.float32
    assert rgba[0, 0, 3] == 0.0 and rgba[24, 32, 3] == 1.0
    np.testing.assert_allclose(rgba[24, 32, :3], np.array([200, 80, 40]) / 255.0, atol=1e-6)


def test_rgb_image_gets_opaque_alpha():
    assert (load_image(png_bytes(40, 40, mode="RGB"))[..., 3] == 1.0).all()


@pytest.mark.parametrize(
    "data, error, words",
    [
        (b"", InputError, "empty"),
        (b"\x00garbage" * 50, UnsupportedFormatError, "not a readable image"),
        (png_bytes(64, 64)[:200], InputError, "truncated"),
        (png_bytes(1, 1), InputError, "1x1"),
        (bomb_png(), TooLargeError, "limit"),
    ],
    ids=["empty", "garbage", "truncated", "1x1", "decompression-bomb"],
)
def test_bad_images_raise_one_clear_sentence(data, error, words):
    with pytest.raises(error, match=words):
        load_image(data)


def test_pixel_limit_is_checked_from_the_header():
    data = png_bytes(100, 100)
    assert load_image(data, max_pixels=100 * 100).shape == (100, 100, 4)
    with pytest.raises(TooLargeError, match="100x100"):
        load_image(data, max_pixels=100 * 100 - 1)


def test_a_file_gets_the_same_checks_and_the_message_names_it(tmp_path):
    """`keydiff3d cache` and `keydiff3d rig` read files through the same loader as the service's uploads."""
    good, tiny, bomb = tmp_path / "good.png", tmp_path / "tiny.png", tmp_path / "bomb.png"
    good.write_bytes(png_bytes(64, 48))
    tiny.write_bytes(png_bytes(1, 1))
    bomb.write_bytes(bomb_png())
    np.testing.assert_array_equal(load_image(good), load_image(png_bytes(64, 48)))
    with pytest.raises(InputError, match=f"cannot read image {tiny}: the image is 1x1 pixels"):
        load_image(tiny)
    with pytest.raises(TooLargeError, match=f"cannot read image {bomb}: .*limit"):
        load_image(bomb)
    with pytest.raises(InputError, match="does not exist"):
        load_image(tmp_path / "absent.png")


def test_gif_is_refused_by_format_not_by_name():
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, format="GIF")
    with pytest.raises(UnsupportedFormatError, match="GIF"):
        load_image(buffer.getvalue())


# --------------------------------------------------------------------------- options and devices


def test_options_from_json_checks_keys_and_types():
    options = PipelineOptions.from_dict({"preset": "quadruped", "seed": 3, "export_glb": False})
    assert (options.preset, options.seed, options.export_glb) == ("quadruped", 3, False)
    assert PipelineOptions.from_dict(options.to_dict()) == options
    with pytest.raises(InputError, match="^options: unknown key colour"):
        PipelineOptions.from_dict({"colour": "red"})
    with pytest.raises(InputError, match="^options: seed must be int, got True"):
        PipelineOptions.from_dict({"seed": True})
    for seed in (-1, 2**32, 2**64):  # torch.manual_seed's range
        with pytest.raises(InputError, match="^options: seed must be between 0 and 4294967295"):
            PipelineOptions.from_dict({"seed": seed})
    assert PipelineOptions.from_dict({"seed": 2**32 - 1}).seed == 2**32 - 1
    with pytest.raises(InputError, match="^options: device must be one of auto, cuda, cpu, got 'tpu'"):
        PipelineOptions.from_dict({"device": "tpu"})
    with pytest.raises(InputError, match="preset name"):
        PipelineOptions.from_dict({"preset": "../../etc/passwd"})
    with pytest.raises(InputError, match="preset must be a preset name"):
        PipelineOptions(preset="../x")  # built directly: the same checks
    with pytest.raises(InputError, match="JSON object"):
        PipelineOptions.from_dict([1, 2])


def test_cuda_requests_fail_clearly_without_cuda():
    import torch

    from keydiff3d.device import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no usable CUDA GPU"):
            resolve_device("cuda")
