"""`keydiff3d cache` (resumable, corrupt images skipped) and the trainer's `FeatureCache` reader."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from keydiff3d.cli import main
from keydiff3d.errors import ConfigError, InputError
from keydiff3d.geometry import orbit_cameras
from keydiff3d.multiview.sv3d.cache import FeatureCache
from keydiff3d.multiview.sv3d.testing import write_tiny_sv3d_checkpoint

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    return write_tiny_sv3d_checkpoint(tmp_path_factory.mktemp("weights") / "sv3d_p.safetensors")


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    for name, box in {"a.png": (10, 10, 40, 50), "more/b.png": (5, 20, 45, 35)}.items():
        rgba = np.zeros((60, 50, 4), np.uint8)
        x0, y0, x1, y1 = box
        rgba[y0:y1, x0:x1] = [180, 90, 30, 255]
        Image.fromarray(rgba).save(folder / name)
    (folder / "broken.jpg").write_bytes(b"this is not a jpeg")
    Image.fromarray(np.full((20, 20, 3), 128, np.uint8)).save(folder / "no_alpha.png")  # alpha method cannot use it
    return folder


def run_cache(images, out, files, *extra):
    return main(
        [
            "cache",
            str(images),
            "--out",
            str(out),
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
            "--foreground",
            "alpha",
            *extra,
        ]
    )


@pytest.mark.slow
def test_cache_cli_is_resumable_and_skips_bad_images(images, tmp_path, tiny_files, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    out = tmp_path / "cache"
    assert run_cache(images, out, tiny_files, "--feature-views", "20,3,7,12,16") == 0
    items = sorted(p.name for p in (out / "items").iterdir())
    assert len(items) == 2 and all(n.endswith(".safetensors") for n in items)
    failed = [json.loads(line)["source"] for line in (out / "failed.jsonl").read_text().splitlines()]
    assert sorted(failed) == ["broken.jpg", "no_alpha.png"]
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "items").iterdir()}

    capsys.readouterr()
    assert run_cache(images, out, tiny_files, "--feature-views", "20,3,7,12,16") == 0
    assert "cached 0 images, skipped 2 already cached" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in (out / "items").iterdir()} == mtimes

    assert run_cache(images, out, tiny_files, "--feature-views", "all") == 2  # other settings: clear error
    assert "other SV3D settings" in capsys.readouterr().err

    cache = FeatureCache(out, num_views=4, seed=1)
    assert len(cache) == 2
    sample = cache[0]
    assert sample.num_views == 4 and sample.input_view == 0
    views = [int(np.argmin(np.abs(orbit_cameras(size=64).azimuth_deg - a))) for a in sample.cameras.azimuth_deg]
    assert views[0] == 20 and set(views) <= {20, 3, 7, 12, 16} and len(set(views)) == 4
    assert np.allclose(sample.cameras.P, orbit_cameras(size=64).subset(views).P)
    assert sample.images.shape == (4, 64, 64, 3) and sample.masks.shape == (4, 64, 64)
    assert [f.shape[0] for f in sample.features] == [4] * 4 and sample.features[0].dtype == np.float16
    assert sample.feature_names[3] == "up_blocks.3.resnets.2"
    assert cache.load(0, views).images.tobytes() == sample.images.tobytes()  # fixed seed: fixed views
    drawn = [cache.load(1, rng=np.random.default_rng(7)).cameras.azimuth_deg for _ in range(2)]
    assert np.array_equal(drawn[0], drawn[1])  # the caller's generator decides the views
    with pytest.raises(InputError):
        cache.load(0, [20, 5])  # view 5 has no stored features
    with pytest.raises(ConfigError):
        FeatureCache(out, num_views=7)[0]


def test_feature_cache_rejects_non_caches(tmp_path):
    with pytest.raises(InputError, match="not a feature cache"):
        FeatureCache(tmp_path)


def test_missing_weights_fail_before_the_cache_is_created(images, tmp_path, tiny_files, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("KEYDIFF3D_SVD_XT", raising=False)
    out = tmp_path / "cache"
    assert main(["cache", str(images), "--out", str(out), "--sv3d", str(tiny_files.sv3d), "--device", "cpu"]) == 2
    message = capsys.readouterr().err.strip()
    assert "KEYDIFF3D_SVD_XT" in message and len(message.splitlines()) == 1
    assert not out.exists()
