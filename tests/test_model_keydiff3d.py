"""The assembled model: config, batches, variants, parameter groups, inference, render generator."""

import numpy as np
import pytest
import torch

from keydiff3d.errors import ConfigError, InputError
from keydiff3d.geometry import orbit_cameras, project_points
from keydiff3d.model import (
    KeyDiff3D,
    KeyDiff3DBatch,
    KeyDiff3DConfig,
    batch_from_arrays,
    batch_from_result,
    collate,
    select_views,
)
from keydiff3d.multiview.base import MultiViewResult
from keydiff3d.multiview.render_generator import RenderGenerator

torch.set_num_threads(1)

TINY = dict(
    num_keypoints=6,
    image_size=32,
    map_size=16,
    voxel_size=8,
    cnn_channels=(8, 8, 8),
    aggregated_channels=8,
    lifted_channels=4,
    volume_channels=(4, 8),
    reconstruction_channels=(8, 8, 8),
    appearance_dim=8,
)


def tiny_config(**changes) -> KeyDiff3DConfig:
    return KeyDiff3DConfig(**{**TINY, **changes})


def random_result(size: int = 32, views: int = 21, seed: int = 0, features=()) -> MultiViewResult:
    rng = np.random.default_rng(seed)
    images = rng.random((views, size, size, 3), dtype=np.float32)
    masks = (rng.random((views, size, size)) > 0.5).astype(np.float32)
    names = [f"layer{i}" for i in range(len(features))]
    return MultiViewResult(images, masks, orbit_cameras(size=size), views - 1, list(features), names)


def make_batch(config: KeyDiff3DConfig, batch: int = 2, joints: int | None = None) -> KeyDiff3DBatch:
    result = random_result(config.image_size)
    rng = np.random.default_rng(0)
    samples = []
    for b in range(batch):
        gt = None if joints is None else rng.uniform(-0.4, 0.4, (joints + b, 3))  # joint sets of different sizes
        samples.append(
            batch_from_result(result, select_views(result.cameras, 20, config.num_views, rng), config.image_size, gt)
        )
    return collate(samples)


def test_config_round_trip_and_clear_errors():
    config = tiny_config(lifting="triangulation", external_channels=(4, 2))
    data = config.to_dict()
    assert data["cnn_channels"] == [8, 8, 8]
    assert KeyDiff3DConfig.from_dict(data) == config
    with pytest.raises(ConfigError, match="model config: unknown key voxel_sise"):
        KeyDiff3DConfig.from_dict({**data, "voxel_sise": 3})
    with pytest.raises(ConfigError, match="model config: voxel_size must be int, got 'big'"):
        KeyDiff3DConfig.from_dict({"voxel_size": "big"})
    with pytest.raises(ConfigError, match="voxel_size must be int, got 7.5"):
        KeyDiff3DConfig.from_dict({"voxel_size": 7.5})
    with pytest.raises(ConfigError, match="lifting"):
        KeyDiff3DConfig(lifting="magic")
    with pytest.raises(ConfigError, match="external_channels"):
        KeyDiff3DConfig(feature_source="external")


def test_select_views_input_first_and_spread():
    cams = orbit_cameras()
    views = select_views(cams, 20, 4)
    assert views[0] == 20 and len(set(views)) == 4
    assert sorted(np.round(cams.azimuth_deg[views[1:]]).tolist()) == [
        86.0,
        171.0,
        274.0,
    ]  # 171 and 189 tie at 180; the lower index wins
    random_views = select_views(cams, 20, 4, np.random.default_rng(1))
    assert random_views[0] == 20 and len(set(random_views)) == 4
    assert select_views(cams, 20, 1) == [20]
    with pytest.raises(ValueError):
        select_views(cams, 20, 22)


def test_batch_from_arrays_resizes_and_rescales_cameras():
    result = random_result(size=48)
    batch = batch_from_arrays((result.images * 255).astype(np.uint8), result.masks, result.cameras, [20, 3], 32)
    assert batch.images.shape == (1, 2, 3, 32, 32) and batch.images.dtype == torch.float32
    assert batch.images.max() <= 1.0
    np.testing.assert_allclose(
        batch.projections[0].numpy(), result.cameras.subset([20, 3]).resized(32, 32).P, rtol=1e-6
    )
    with pytest.raises(ValueError, match="masks"):
        KeyDiff3DBatch(batch.images, batch.masks[:, :1], batch.projections)


def test_non_square_views_keep_projections_exact():
    """A 48 x 32 view resized to 32 x 32: a point's pixel moves exactly with the image content."""
    cams = orbit_cameras(np.array([0.0]), size=32).resized(48, 32)
    X = np.array([[0.1, -0.2, 0.15]])
    u, v = project_points(cams.P[0], X)[0][0]
    rows, cols = np.mgrid[0:32, 0:48] + 0.5
    dot = np.exp(-((cols - u) ** 2 + (rows - v) ** 2) / (2 * 2.0**2)).astype(np.float32)
    images = np.repeat(dot[None, :, :, None], 3, axis=3)
    batch = batch_from_arrays(images, dot[None], cams, [0], 32)
    uv, _ = project_points(batch.projections[0, 0].double().numpy(), X)
    image = batch.masks[0, 0].numpy()
    r, c = np.mgrid[0:32, 0:32] + 0.5
    centroid = np.array([(image * c).sum() / image.sum(), (image * r).sum() / image.sum()])
    np.testing.assert_allclose(uv[0], centroid, atol=0.1)


@pytest.mark.parametrize(
    "changes",
    [
        {},  # the method: voxel lifting, K = 4
        {"num_views": 1},  # input view only
        {"lifting": "triangulation"},  # 2D keypoints + DLT
        {"supervision": "chamfer"},
        {"supervision": "joints", "lambda_perceptual": 0.0, "lambda_mask": 0.0},  # supervised upper bound
        {"voxel_chunk": 100, "perceptual_loss": "pyramid"},
    ],
)
def test_variants_forward_backward(changes):
    torch.manual_seed(0)
    config = tiny_config(**changes)
    model = KeyDiff3D(config).train()
    joints = config.num_keypoints if config.supervision == "joints" else 4
    batch = make_batch(config, joints=joints if config.supervision != "joints" else None)
    if config.supervision == "joints":
        batch.joints = torch.rand(2, config.num_keypoints, 3) - 0.5
    out = model(batch)
    B, K, N, m = 2, config.num_views, config.num_keypoints, config.map_size
    assert out.keypoints.shape == (B, N, 3)
    assert out.keypoints.abs().max() <= config.cube_half + 1e-6 or config.lifting == "triangulation"
    assert out.keypoints_2d.shape == (B, K, N, 2) and out.depth.shape == (B, K, N)
    assert out.edge_weights.shape == (N, N)
    if config.needs_reconstruction:
        assert out.reconstructions.shape == (B, K, 3, m, m)
        assert out.edge_maps.shape == (B, K, m, m) and out.keypoint_maps.shape == (B, K, N, m, m)
    else:
        assert model.reconstructor is None and "perceptual" not in out.losses
    if config.supervision != "none":
        assert "joints" in out.losses
    out.losses["total"].backward()
    for name, parameter in model.named_parameters():
        unused = config.lambda_mask == 0 and name.startswith("adjacency")
        assert unused or parameter.grad is not None, f"no gradient reached {name}"
        assert parameter.grad is None or torch.isfinite(parameter.grad).all(), name


def test_external_features_sv3d_layout():
    """The same model code on generator features: 4 layers at 4 resolutions, fp16, any size."""
    channels = (16, 16, 8, 4)
    config = tiny_config(feature_source="external", external_channels=channels)
    features = [
        np.random.default_rng(i).normal(size=(21, c, s, s)).astype(np.float16)
        for i, (c, s) in enumerate(zip(channels, (3, 6, 12, 24)))
    ]
    result = random_result(features=features)
    model = KeyDiff3D(config)
    assert model.backbone is None
    keypoints, adjacency = model.predict(result)
    assert keypoints.shape == (6, 3) and adjacency.shape == (6, 6)
    batch = collate([batch_from_result(result, [20, 1, 5, 9], 32)] * 2)
    out = model.train()(batch)
    out.losses["total"].backward()
    assert model.aggregator.mixing.grad is not None
    with pytest.raises(InputError, match="generator features"):
        model.predict(random_result())


def test_parameter_groups_partition_the_parameters():
    model = KeyDiff3D(tiny_config())
    groups = {g["name"]: g for g in model.parameter_groups()}
    assert set(groups) == {"model", "adjacency", "reconstruction"}
    assert groups["model"]["lr"] == 1e-4 and groups["reconstruction"]["lr"] == 1e-3
    assert groups["adjacency"]["weight_decay"] == 0.0
    ids = [id(p) for g in groups.values() for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert groups["adjacency"]["params"] == [model.adjacency.raw]
    torch.optim.AdamW(model.parameter_groups())  # accepted as-is


def test_state_dict_holds_no_loss_network_and_config_records_the_loss(monkeypatch):
    monkeypatch.delenv("KEYDIFF3D_VGG16", raising=False)
    model = KeyDiff3D(tiny_config())
    assert model.config.perceptual_loss == "pyramid"
    model.train()(make_batch(model.config))  # builds the loss module
    assert not any(key.startswith(("_criterion", "perceptual")) for key in model.state_dict())
    clone = KeyDiff3D(KeyDiff3DConfig.from_dict(model.config.to_dict()))
    clone.load_state_dict(model.state_dict())


def test_predict_is_deterministic_and_in_the_cube():
    torch.manual_seed(0)
    model = KeyDiff3D(tiny_config()).train()
    result = random_result()
    a, adjacency = model.predict(result)
    b, _ = model.predict(result)
    np.testing.assert_array_equal(a, b)
    assert model.training  # predict restores the mode
    assert np.abs(a).max() <= 0.6 and np.allclose(adjacency, adjacency.T)


def test_augmentation_changes_only_the_input_view():
    torch.manual_seed(0)
    model = KeyDiff3D(tiny_config())
    batch = make_batch(model.config)
    images, masks, _, P = model.augment_input(batch)
    assert not torch.allclose(images[:, 0], batch.images[:, 0])
    assert not torch.allclose(masks[:, 0], batch.masks[:, 0])
    torch.testing.assert_close(masks[:, 1:], batch.masks[:, 1:])
    torch.testing.assert_close(images[:, 1:], batch.images[:, 1:])
    torch.testing.assert_close(P[:, 1:], batch.projections[:, 1:])
    assert not torch.allclose(P[:, 0], batch.projections[:, 0])


def test_render_generator_implements_the_protocol():
    trimesh = pytest.importorskip("trimesh")
    generator = RenderGenerator(size=32)
    result = generator.from_mesh(trimesh.creation.box(extents=(0.5, 0.3, 0.4)))
    assert result.images.shape == (21, 32, 32, 3) and result.input_view == 20
    assert result.features == [] and result.masks.max() == 1.0
    np.testing.assert_allclose(result.cameras.P, orbit_cameras(size=32).P)
    with pytest.raises(InputError, match="SV3D"):
        generator.from_image(np.zeros((8, 8, 4), np.float32))
    keypoints, _ = KeyDiff3D(tiny_config()).predict(result)
    assert keypoints.shape == (6, 3)


@pytest.mark.cuda
def test_paper_size_on_cuda_with_autocast():
    """SV3D decoder taps (1280/1280/640/320 at 9/18/36/72 for 576 px), C' = 384, M = 72, K = 4, bf16."""
    config = KeyDiff3DConfig(
        feature_source="external",
        external_channels=(1280, 1280, 640, 320),
        aggregated_channels=384,
        voxel_size=72,
        volume_channels=(32, 64, 128, 128),
        image_size=256,
        map_size=128,
    )
    model = KeyDiff3D(config).cuda().train()
    generator = torch.Generator().manual_seed(0)
    features = [
        torch.randn(2, 4, c, s, s, generator=generator).half()
        for c, s in zip(config.external_channels, (9, 18, 36, 72))
    ]
    P = torch.tensor(orbit_cameras(size=256).subset([20, 4, 9, 14]).P, dtype=torch.float32)
    batch = KeyDiff3DBatch(
        torch.rand(2, 4, 3, 256, 256), torch.rand(2, 4, 256, 256), P.expand(2, -1, -1, -1).clone(), features
    ).to("cuda")
    torch.cuda.reset_peak_memory_stats()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(batch)
    out.losses["total"].backward()
    assert out.keypoints.dtype == torch.float32 and out.keypoints.shape == (2, 18, 3)
    assert torch.isfinite(out.losses["total"]) and out.heatmaps.shape == (2, 18, 72, 72, 72)
    assert torch.cuda.max_memory_allocated() < 40e9


def test_vgg_trained_model_predicts_without_the_vgg_file(monkeypatch):
    from keydiff3d.errors import MissingWeightsError

    monkeypatch.delenv("KEYDIFF3D_VGG16", raising=False)
    model = KeyDiff3D(tiny_config(perceptual_loss="vgg16"))
    keypoints, _ = model.predict(random_result())
    assert keypoints.shape == (6, 3)
    with pytest.raises(MissingWeightsError, match="VGG16"):
        model.train()(make_batch(model.config))
