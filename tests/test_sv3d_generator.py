"""The SV3D-p image -> 21 views + tapped features path with tiny random weights on the CPU."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from keydiff3d.errors import Cancelled, InputError
from keydiff3d.geometry import orbit_cameras
from keydiff3d.multiview.sv3d.generator import white_background_masks
from keydiff3d.multiview.sv3d.sampler import (
    cfg_combine,
    ddpm_sigma,
    denoised_from_v,
    edm_sigmas,
    euler_step,
    nearest_step,
    triangle_guidance,
)
from keydiff3d.multiview.sv3d.testing import tiny_sv3d_generator
from keydiff3d.networks.sv3d_unet import camera_vector
from keydiff3d.progress import Progress
from keydiff3d.segmentation.preprocess import prepare_sv3d_input

torch.set_num_threads(1)
SIZE = 64


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    return tiny_sv3d_generator(tmp_path_factory.mktemp("sv3d"), size=SIZE, num_steps=3)


@pytest.fixture(scope="module")
def image():
    rgba = np.zeros((90, 70, 4), np.float32)
    rgba[15:80, 20:55] = [0.8, 0.3, 0.1, 1.0]
    return rgba


@pytest.fixture(scope="module")
def result(generator, image):
    return generator.from_image(image)


def test_sampler_schedule_and_guidance_follow_sv3d_p():
    sigmas = edm_sigmas(50, sigma_max=700.0)
    assert sigmas[0] == pytest.approx(700.0) and sigmas[-2] == pytest.approx(0.002) and sigmas[-1] == 0.0
    assert np.all(np.diff(sigmas) < 0)
    scales = triangle_guidance(21, 1.0, 2.5)
    assert scales[0] == scales[-1] == pytest.approx(1.0) and scales[10] == pytest.approx(2.5)
    assert np.allclose(scales, scales[::-1]) and np.all(np.diff(scales[:11]) > 0)
    assert ddpm_sigma(500) == pytest.approx(1.618, abs=0.01)
    assert ddpm_sigma(999) > ddpm_sigma(500) > ddpm_sigma(100)
    step = nearest_step(sigmas, ddpm_sigma(500))
    assert abs(np.log(sigmas[step] / ddpm_sigma(500))) <= min(
        abs(np.log(sigmas[s] / ddpm_sigma(500))) for s in range(50)
    )


def test_v_prediction_scaling_and_euler_step():
    x = torch.randn(1, 3, 4, 2, 2)
    sigma = 2.0
    # the exact v of a clean latent x0 with noise n at sigma: v = (x0 - sigma*... ) -> D must give back x0
    x0, noise = torch.randn_like(x), torch.randn_like(x)
    noisy = x0 + sigma * noise
    alpha, sig = 1 / np.sqrt(1 + sigma**2), sigma / np.sqrt(1 + sigma**2)
    v = alpha * noise - sig * x0  # v-target on the variance-preserving scale of c_in * noisy
    assert torch.allclose(denoised_from_v(noisy, v, sigma), x0, atol=1e-5)
    assert torch.allclose(euler_step(noisy, x0, sigma, 0.0), x0, atol=1e-5)  # last step lands on D
    u, c = torch.zeros(1, 3, 1), torch.ones(1, 3, 1)
    assert cfg_combine(u, c, torch.tensor([1.0, 2.0, 0.5])).flatten().tolist() == [1.0, 2.0, 0.5]


def test_camera_vector_is_sgm_sinusoids():
    vec = camera_vector(torch.tensor([1e-5]), torch.tensor([1.2]), torch.tensor([0.7]))
    assert vec.shape == (1, 1280)
    half = 256
    freqs = torch.exp(-np.log(10000) * torch.arange(half) / half)
    assert torch.allclose(vec[0, 256:512], torch.cos(1.2 * freqs), atol=1e-5)  # cos first
    assert torch.allclose(vec[0, 512:768], torch.sin(1.2 * freqs), atol=1e-5)
    assert torch.allclose(vec[0, 768:1024], torch.cos(0.7 * freqs), atol=1e-5)


def test_result_has_21_views_cameras_masks_and_features(generator, result):
    assert result.num_views == 21 and result.input_view == 20
    assert result.images.shape == (21, SIZE, SIZE, 3) and result.masks.shape == (21, SIZE, SIZE)
    assert np.isfinite(result.images).all() and 0.0 <= result.images.min() and result.images.max() <= 1.0
    expected = orbit_cameras(size=SIZE)
    assert np.allclose(result.cameras.P, expected.P) and np.allclose(result.cameras.azimuth_deg, expected.azimuth_deg)
    latent = SIZE // 8
    assert result.feature_names == [
        "up_blocks.0.resnets.2",
        "up_blocks.1.resnets.2",
        "up_blocks.2.resnets.2",
        "up_blocks.3.resnets.2",
    ]
    channels = generator.models.unet.config.block_out_channels[::-1]
    for level, (feature, c) in enumerate(zip(result.features, channels)):
        assert feature.shape == (21, c, latent // 2 ** (3 - level), latent // 2 ** (3 - level))
        assert feature.dtype == np.float16 and np.isfinite(feature).all()
    assert not np.allclose(result.features[3][0], result.features[3][10])  # frames differ (own cameras)


def test_input_view_is_the_preprocessed_input(generator, image, result):
    prepared = prepare_sv3d_input(image, SIZE)
    assert np.allclose(result.images[20], prepared.rgb) and np.allclose(result.masks[20], prepared.alpha)


def test_progress_is_monotone_and_cancel_stops_between_steps(generator, image):
    events = []
    generator.from_image(image, Progress(lambda stage, f, msg: events.append((f, msg))))
    fractions = [f for f, _ in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert sum("denoising step" in m for _, m in events) == 3

    steps = []

    def cancel_after_first_step(stage, fraction, message):
        steps.append(message)
        if message.startswith("denoising step 2"):
            progress.cancel()

    progress = Progress(cancel_after_first_step)
    with pytest.raises(Cancelled):
        generator.from_image(image, progress)
    assert not any("decod" in m for m in steps)


def test_unet_is_conditioned_on_the_returned_cameras(generator, result):
    ids = generator._camera_ids()[0].cpu().numpy()  # (T, 3) cond_aug, polar, azimuth fed to the U-Net
    assert np.allclose(ids[:, 0], 1e-5)
    assert np.allclose(ids[:, 1], np.radians(90.0 - result.cameras.elevation_deg))
    assert np.allclose(ids[:, 2], np.radians(result.cameras.azimuth_deg), atol=1e-6)
    assert ids[20, 2] == 0.0  # the input view is azimuth 0


@pytest.mark.slow
def test_same_seed_same_output_and_unbatched_guidance_matches(generator, image, result):
    again = generator.from_image(image)
    assert np.array_equal(again.features[2], result.features[2])
    cfg = generator.config
    try:  # tap the first step, where both modes see the same x (later steps amplify float noise)
        generator.config = replace(cfg, tap_sigma=700.0)
        batched = generator.from_image(image)
        generator.config = replace(cfg, tap_sigma=700.0, guidance_batched=False)
        sequential = generator.from_image(image)
    finally:
        generator.config = cfg
    # two passes tap the conditional pass; one batched pass taps its conditional half: same features
    for a, b in zip(sequential.features, batched.features):
        assert np.allclose(a.astype(np.float32), b.astype(np.float32), atol=2e-3)
    assert np.allclose(sequential.images, batched.images, atol=0.02)


def test_features_come_from_the_step_nearest_tau(generator, image, result):
    cfg = generator.config
    generator.config = replace(cfg, tap_sigma=700.0)
    try:
        other = generator.from_image(image)
    finally:
        generator.config = cfg
    assert np.array_equal(other.images, result.images)  # tapping never changes sampling
    assert not np.allclose(other.features[3], result.features[3])


def test_white_background_masks():
    images = np.ones((2, 20, 20, 3), np.float32)
    images[0, 5:15, 5:15] = [0.2, 0.4, 0.6]
    images[0, 8:12, 8:12] = 1.0  # a white patch inside the object stays foreground
    masks = white_background_masks(images, 0.04, 0.12)
    assert masks[0, 10, 10] == 1.0 and masks[0, 6, 6] == 1.0 and masks[0, 0, 0] == 0.0
    assert masks[1].max() == 0.0


def test_from_mesh_and_bad_inputs_are_clear_errors(generator):
    with pytest.raises(InputError):
        generator.from_mesh(None)
    with pytest.raises(InputError, match="no foreground"):
        generator.from_image(np.zeros((10, 10, 4), np.float32))


def test_view_segmenter_replaces_threshold_masks_of_generated_views(generator, image):
    calls = []

    def binary(rgb, rough):
        calls.append(rgb.shape)
        return (rough > 0.5).astype(np.float32)

    generator.view_segmenter = binary
    try:
        result = generator.from_image(image)
    finally:
        generator.view_segmenter = None
    assert len(calls) == 21 and calls[0] == (SIZE, SIZE, 3)
    assert set(np.unique(result.masks[:20])) <= {0.0, 1.0}
    assert np.allclose(result.masks[20], prepare_sv3d_input(image, SIZE).alpha)
