"""Training on SV3D-p features: a folder of images -> `keydiff3d cache` -> `keydiff3d train` -> `keydiff3d eval`
on a cache of rendered creatures (known joints), with a tiny random-weight SV3D-p through the real file formats."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from keydiff3d.cli import main
from keydiff3d.errors import ConfigError
from keydiff3d.evaluation.protocol import train_and_evaluate
from keydiff3d.geometry import project_points
from keydiff3d.multiview.cache_cli import render_creature_input
from keydiff3d.multiview.sv3d import SV3DConfig
from keydiff3d.multiview.sv3d.cache import FeatureCache
from keydiff3d.multiview.sv3d.testing import write_tiny_sv3d_checkpoint
from keydiff3d.segmentation.preprocess import prepare_sv3d_input
from keydiff3d.training.checkpoint import load_model
from keydiff3d.training.config import load_config
from keydiff3d.training.data import CacheData, StepBatches, open_data

TINY_TAP_CHANNELS = [64, 64, 32, 32]  # up_blocks.0-3 resnets.2 of testing.TINY_CHANNELS, coarse to fine


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    """(photo cache, creature cache, weights): 6 'photos' (creature renders as RGBA PNGs), 16 rendered creatures."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("feature-cache")
    files = write_tiny_sv3d_checkpoint(root / "weights" / "sv3d_p.safetensors")
    photos = root / "photos"
    photos.mkdir()
    for i in range(6):
        rgba, _ = render_creature_input(("quadruped", "bird")[i % 2], 100 + i, SV3DConfig(size=96))
        Image.fromarray(np.round(rgba * 255).astype(np.uint8)).save(photos / f"photo_{i}.png")
    common = [
        "--sv3d",
        str(files.sv3d),
        "--svd-xt",
        str(files.svd_xt),
        "--size",
        "64",
        "--steps",
        "2",
        "--device",
        "cpu",
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(root / "xdg"))
        assert main(["cache", str(photos), "--out", str(root / "photos-cache"), "--foreground", "alpha", *common]) == 0
        assert (
            main(
                [
                    "cache",
                    "--creatures",
                    "16",
                    "--categories",
                    "quadruped,bird",
                    "--out",
                    str(root / "creatures"),
                    *common,
                ]
            )
            == 0
        )
    return root / "photos-cache", root / "creatures", files


def _overrides(photos, creatures, out, name, *extra):
    return [
        "--set",
        "data.source=feature_cache",
        "--set",
        f'data.dir="{photos}"',
        "--set",
        f'data.eval_dir="{creatures}"',
        "--set",
        "data.held_out_fraction=0.4",
        "--set",
        "data.max_items=0",
        "--set",
        "model.feature_source=external",
        "--set",
        f"model.external_channels={TINY_TAP_CHANNELS}",
        "--set",
        "model.num_views=4",
        "--set",
        f'logging.out_dir="{out}"',
        "--set",
        f'name="{name}"',
        *extra,
    ]


def _config(photos, creatures, out, name, *extra):
    pairs = _overrides(photos, creatures, out, name, *extra)
    return load_config("tiny", pairs[1::2])


def test_creature_inputs_are_sv3d_framed_and_their_joints_lie_on_them():
    config = SV3DConfig(size=64)
    rgba, truth = render_creature_input("quadruped", 7, config)
    prepared = prepare_sv3d_input(rgba, config.size, config.margin)
    left, top, side = prepared.crop
    assert abs(side - 64) < 1.5 and abs(left) < 1.0 and abs(top) < 1.0  # preprocessing keeps the render as it is
    assert truth.joints.shape == (25, 3) and truth.bones.shape == (24, 2) and truth.category == "quadruped"
    from keydiff3d.geometry import orbit_cameras

    camera = orbit_cameras(size=64).subset([20])
    uv, _ = project_points(camera.P[0], truth.joints)
    inside = rgba[np.clip(uv[:, 1].astype(int), 0, 63), np.clip(uv[:, 0].astype(int), 0, 63), 3] > 0.5
    assert inside.mean() > 0.8  # the placed joints sit inside the creature's silhouette in the input view


def test_cache_samples_carry_features_targets_and_ground_truth(caches):
    photos, creatures, _ = caches
    config = _config(photos, creatures, "unused", "x")
    model_config = config.model_config()
    train = open_data(config.data, model_config, "all")
    assert isinstance(train, CacheData) and len(train) == 6 and not train.has_ground_truth
    batch = StepBatches(train, 2, seed=0)[0]
    assert tuple(batch.images.shape) == (2, 4, 3, 32, 32) and tuple(batch.masks.shape) == (2, 4, 32, 32)
    assert [tuple(f.shape[:3]) for f in batch.features] == [(2, 4, c) for c in TINY_TAP_CHANNELS]
    assert batch.features[0].dtype == torch.float16 and batch.joints is None
    # view 0 is the cached input frame, its mask the input's alpha; the targets are the cached views
    sample = train.sample(0, np.random.default_rng(1))
    cached = FeatureCache(photos, num_views=None).load(0, [20], features=False)
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(cached.images).permute(0, 3, 1, 2), size=32, mode="bilinear", antialias=True
    )
    assert torch.allclose(sample.batch.images[0, 0], expected[0], atol=1e-5)
    # evaluation views are fixed (input + evenly spaced); training views are drawn per step
    assert torch.equal(train.sample(2).batch.projections, train.sample(2).batch.projections)
    evaluation = open_data(config.data, model_config, "test", creatures)
    train_split = open_data(config.data, model_config, "train", creatures)
    assert len(evaluation) + len(train_split) == 16 and evaluation.has_ground_truth
    keys = {evaluation.cache.key(i) for i in range(len(evaluation))}
    assert not keys & {train_split.cache.key(i) for i in range(len(train_split))}
    assert evaluation.joints(0).shape[1] == 3 and set(evaluation.categories) <= {"quadruped", "bird"}


def test_wrong_source_channels_or_evaluation_folder_fail_before_training(caches, tmp_path):
    photos, creatures, _ = caches
    with pytest.raises(ConfigError, match=r"external_channels = \[64, 64, 32, 32\]"):
        bad = _config(photos, creatures, tmp_path, "x", "--set", "model.external_channels=[8,8,8,8]")
        open_data(bad.data, bad.model_config(), "all")
    with pytest.raises(ConfigError, match="set \\[data\\] source = 'feature_cache'"):
        load_config("tiny", ["model.feature_source=external", "model.external_channels=[8]"])
    with pytest.raises(ConfigError, match="source is 'synthetic' but"):
        plain = load_config("tiny", [f'data.dir="{photos}"'])
        open_data(plain.data, plain.model_config(), "train")
    # photos have no joints: with no evaluation folder the run is refused before it starts
    no_eval = _config(photos, "", tmp_path, "photos-only")
    with pytest.raises(ConfigError, match="needs ground-truth joints"):
        train_and_evaluate(no_eval)
    assert not (tmp_path / "photos-only").exists()


@pytest.mark.slow
def test_images_to_cache_to_train_to_eval(caches, tmp_path, capsys):
    photos, creatures, _ = caches
    assert main(["train", "tiny", *_overrides(photos, creatures, tmp_path, "sv3d")]) == 0
    run = tmp_path / "sv3d"
    model, config, metadata = load_model(run / "model.safetensors")
    assert (
        metadata["feature_source"] == "external"
        and metadata["data_source"] == "feature_cache"
        and metadata["step"] == 4
    )
    assert config.data.dir == str(photos) and model.backbone is None
    assert model.aggregator.in_channels == tuple(TINY_TAP_CHANNELS)
    report = json.loads((run / "eval.json").read_text())
    assert report["num_train"] + report["num_test"] == 16  # evaluation ran on the creature cache
    assert set(metadata["eval"]) >= {"mpjpe", "cd_j2j", "cd_j2b"} and np.isfinite(metadata["eval"]["mpjpe"])
    assert sorted(p.name for p in (run / "previews").glob("*.png")) == ["step_0000002.png", "step_0000004.png"]

    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run), "--data", str(creatures), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["poses"]["mlp"]["all"]["mpjpe"] == pytest.approx(report["poses"]["mlp"]["all"]["mpjpe"], rel=1e-6)
    assert main(["eval", "--checkpoint", str(run), "--data", str(photos)]) == 2  # photos: no joints to score
    assert "ground-truth joints" in capsys.readouterr().err


@pytest.mark.cuda
def test_feature_cache_training_on_cuda_in_bf16(caches, tmp_path):
    photos, creatures, _ = caches
    config = _config(photos, creatures, tmp_path, "cuda", "--set", 'optim.mixed_precision="bf16"')
    torch.cuda.reset_peak_memory_stats()
    result, report = train_and_evaluate(config)
    assert result.step == 4 and torch.cuda.max_memory_allocated() > 0  # the run used the GPU
    assert np.isfinite(report.headline()["mpjpe"]) and report.num_train + report.num_test == 16
