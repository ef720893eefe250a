"""CUDA paths of the SV3D generator (half precision, offloading); skipped without a GPU (tests/conftest.py)."""

import numpy as np
import pytest

from keydiff3d.errors import InputError
from keydiff3d.multiview.sv3d.generator import RuntimeOptions, SV3DConfig, SV3DGenerator
from keydiff3d.multiview.sv3d.testing import random_sv3d_models


def _image():
    rgba = np.zeros((80, 80, 4), np.float32)
    rgba[10:70, 20:60] = [0.6, 0.3, 0.2, 1.0]
    return rgba


def test_half_precision_is_refused_on_the_cpu():
    with pytest.raises(InputError, match="needs CUDA"):
        SV3DGenerator(
            random_sv3d_models(False), SV3DConfig(size=64, num_steps=2), RuntimeOptions(device="cpu", dtype="fp16")
        )


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
@pytest.mark.parametrize("offload", [False, True])
def test_half_precision_and_offload_on_cuda(dtype, offload):
    config = SV3DConfig(size=64, num_steps=3, tap_sigma=700.0)
    reference = SV3DGenerator(
        random_sv3d_models(False), config, RuntimeOptions(device="cuda", dtype="fp32")
    ).from_image(_image())
    generator = SV3DGenerator(
        random_sv3d_models(False), config, RuntimeOptions(device="cuda", dtype=dtype, offload=offload)
    )
    result = generator.from_image(_image())
    assert all(np.isfinite(f.astype(np.float32)).all() for f in result.features)
    assert np.isfinite(result.images).all()
    if offload:
        assert next(generator.models.unet.parameters()).device.type == "cpu"
    for a, b in zip(result.features, reference.features):  # first step: same inputs, precision-limited difference
        scale = float(np.abs(b.astype(np.float32)).max())
        assert np.abs(a.astype(np.float32) - b.astype(np.float32)).max() <= 0.1 * scale
