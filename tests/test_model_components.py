"""Feature CNN, aggregator, 3D CNN, reconstruction net, VGG16 loading, losses."""

import pytest
import torch

from keydiff3d.errors import MissingWeightsError
from keydiff3d.model.aggregator import HyperfeatureAggregator
from keydiff3d.model.features import FeatureCNN
from keydiff3d.model.losses import (
    PyramidLoss,
    chamfer_loss,
    joint_loss,
    make_perceptual_loss,
    mask_loss,
    resolve_perceptual_loss,
)
from keydiff3d.model.reconstruction import ReconstructionNet, patch_mask
from keydiff3d.model.vgg import VGG16_ENV, VGG16Features, VGGPerceptualLoss, find_vgg16_weights
from keydiff3d.model.volume_net import VolumeNet, pooling_levels

torch.set_num_threads(1)


def test_feature_cnn_taps_coarse_to_fine():
    cnn = FeatureCNN((8, 12, 16))
    taps = cnn(torch.rand(2, 3, 64, 48))
    assert [tuple(t.shape) for t in taps] == [(2, 16, 8, 6), (2, 12, 16, 12), (2, 8, 32, 24)]
    assert cnn.out_channels == (16, 12, 8)


def test_aggregator_mixes_any_number_of_layers_at_one_resolution():
    # SV3D-like taps, scaled down: 4 layers of different widths at 9/18/36/72 -> 72
    layers = [torch.randn(2, c, s, s).half() for c, s in [(40, 9), (40, 18), (20, 36), (10, 72)]]
    aggregator = HyperfeatureAggregator([40, 40, 20, 10], 16)
    out = aggregator(layers)
    assert out.shape == (2, 16, 72, 72) and out.dtype == torch.float32
    torch.testing.assert_close(aggregator.mixing_weights(), torch.full((4,), 0.25))  # init 1 -> uniform
    out.mean().backward()
    assert aggregator.mixing.grad is not None and aggregator.mixing.grad.abs().sum() > 0
    # a single layer, explicit output size, non-square maps
    single = HyperfeatureAggregator([5], 8, out_size=(6, 10))
    assert single([torch.randn(1, 5, 3, 5)]).shape == (1, 8, 6, 10)
    with pytest.raises(ValueError, match="channels"):
        aggregator([torch.randn(2, 41, 9, 9)] + layers[1:])


@pytest.mark.parametrize("size,levels", [(72, 3), (32, 3), (24, 3), (16, 2), (12, 2), (9, 0)])
def test_pooling_levels_fit_the_voxel_size(size, levels):
    assert pooling_levels(size) == levels


@pytest.mark.parametrize("size", [24, 32])
def test_volume_net_keeps_the_grid(size):
    net = VolumeNet(5, 7, size, widths=(4, 8, 8))
    out = net(torch.randn(1, 5, size, size, size))
    assert out.shape == (1, 7, size, size, size)
    with pytest.raises(ValueError, match="M="):
        net(torch.randn(1, 5, 8, 8, 8))


def test_volume_net_m72_forward():
    net = VolumeNet(4, 3, 72, widths=(2, 4, 4, 4))
    assert net.levels == 3  # 72 -> 36 -> 18 -> 9
    with torch.no_grad():
        out = net(torch.randn(1, 4, 72, 72, 72))
    assert out.shape == (1, 3, 72, 72, 72)
    assert torch.isfinite(out).all()


def test_reconstruction_net_shapes_and_range():
    net = ReconstructionNet(structure_channels=5, widths=(8, 16, 16), appearance_dim=8)
    out = net(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 5, 32, 32))
    assert out.shape == (2, 3, 3, 32, 32)
    assert out.min() >= 0 and out.max() <= 1


def test_patch_mask_hides_the_requested_fraction():
    images = torch.rand(3, 3, 64, 64)
    masked = patch_mask(images, 0.8, grid=16)
    hidden = (masked == 0.5).all(dim=1).float().mean(dim=(1, 2))
    torch.testing.assert_close(hidden, torch.full((3,), round(0.8 * 256) / 256), atol=0.01, rtol=0)
    assert patch_mask(images, 0.0) is images


@pytest.mark.slow
def test_vgg16_loads_torchvision_layout_and_rejects_other_files(tmp_path, monkeypatch):
    from torchvision.models import vgg16

    torch.manual_seed(0)
    reference = vgg16(weights=None).features  # torchvision's own layout, as in vgg16-397923af.pth
    state = {f"features.{k}": v for k, v in reference.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # extra keys of the full file are ignored
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    monkeypatch.setenv(VGG16_ENV, str(path))
    assert find_vgg16_weights() == path
    assert resolve_perceptual_loss("auto") == "vgg16"
    model = VGG16Features().load_file(path)
    torch.testing.assert_close(model.features[0].weight, reference[0].weight)
    taps = model(torch.rand(1, 3, 32, 32))
    assert [t.shape[1] for t in taps] == [64, 128, 256, 512]
    loss = VGGPerceptualLoss(path)
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    value = loss(x, torch.rand(1, 3, 32, 32))
    value.backward()
    assert value > 0 and x.grad.abs().sum() > 0
    assert loss(x, x.detach()).item() == 0

    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, bad)
    with pytest.raises(MissingWeightsError, match="not a torchvision VGG16"):
        VGG16Features().load_file(bad)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(MissingWeightsError, match="could not read"):
        VGG16Features().load_file(junk)
    with pytest.raises(MissingWeightsError, match="does not exist"):
        find_vgg16_weights(tmp_path / "missing.pth")


def test_perceptual_loss_without_weights_falls_back_to_pyramid(monkeypatch):
    monkeypatch.delenv(VGG16_ENV, raising=False)
    assert resolve_perceptual_loss("auto") == "pyramid"
    assert resolve_perceptual_loss("vgg16") == "vgg16"  # a VGG-trained model still loads for inference
    with pytest.raises(MissingWeightsError, match="KEYDIFF3D_VGG16"):
        make_perceptual_loss("vgg16")


def test_pyramid_loss_is_zero_for_equal_images_and_orders_errors():
    loss = PyramidLoss()
    target = torch.rand(2, 3, 32, 32)
    assert loss(target, target).item() == pytest.approx(0.0, abs=1e-6)
    slightly = (target + 0.05 * torch.randn_like(target)).clamp(0, 1)
    very = torch.rand_like(target)
    assert loss(slightly, target) < loss(very, target)


def test_mask_and_joint_losses():
    edges = torch.zeros(1, 2, 4, 4)
    masks = torch.ones(1, 2, 4, 4)
    assert mask_loss(edges, masks).item() == 1.0
    points = torch.tensor([[[0.0, 0, 0], [1, 0, 0]]])
    joints = torch.tensor([[[0.0, 0, 1], [1, 0, 0], [5, 5, 5]]])
    valid = torch.tensor([[True, True, False]])
    assert joint_loss(points, joints[:, :2]).item() == pytest.approx(0.5)
    # Chamfer ignores the padded joint: points->joints 0.5 mean, joints->points 0.5 mean
    assert chamfer_loss(points, joints, valid).item() == pytest.approx(0.5)
