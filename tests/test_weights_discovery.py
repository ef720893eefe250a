"""`keydiff3d weights`: search order, validation of wrong files, one-sentence errors, cached checksums."""

import hashlib
import json

import pytest
import torch

from keydiff3d import weights
from keydiff3d.cli import main
from keydiff3d.errors import ConfigError, MissingWeightsError


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("KEYDIFF3D_WEIGHTS_DIR", raising=False)
    for spec in weights.SPECS.values():
        monkeypatch.delenv(spec.env, raising=False)
    return tmp_path


def vgg_like(path, first=(64, 3, 3, 3)):
    state = {"features.0.weight": torch.zeros(first), "features.28.weight": torch.zeros(512, 512, 3, 3)}
    torch.save(state, path)
    return path


def test_every_expected_file_is_listed_as_missing_with_where_to_get_it(capsys):
    assert set(weights.SPECS) == {"sv3d_p", "svd_xt", "sam", "grounding_dino", "vgg16"}
    assert main(["weights", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in report["weights"]}
    assert all(not row["present"] and row["searched"] and row["source"].startswith("http") for row in rows.values())
    assert rows["sv3d_p"]["env"] == "KEYDIFF3D_SV3D"


def test_missing_file_is_one_actionable_sentence():
    with pytest.raises(MissingWeightsError) as info:
        weights.require("sam")
    message = str(info.value)
    assert "\n" not in message and "KEYDIFF3D_SAM" in message and "segment-anything" in message


def test_search_order_argument_env_config_folder(isolated_home, monkeypatch):
    folder = isolated_home / "cache" / "keydiff3d" / "weights"
    folder.mkdir(parents=True)
    in_folder = vgg_like(folder / "vgg16-397923af.pth")
    assert weights.locate("vgg16").origin == "weights folder" and weights.require("vgg16") == in_folder

    configured = vgg_like(isolated_home / "configured.pth")
    config = isolated_home / "config" / "keydiff3d" / "weights.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[weights]\nvgg16 = "{configured}"\n')
    assert weights.require("vgg16") == configured

    from_env = vgg_like(isolated_home / "env.pth")
    monkeypatch.setenv("KEYDIFF3D_VGG16", str(from_env))
    assert weights.require("vgg16") == from_env
    explicit = vgg_like(isolated_home / "explicit.pth")
    assert weights.require("vgg16", explicit) == explicit

    monkeypatch.setenv("KEYDIFF3D_VGG16", str(isolated_home / "typo.pth"))  # a wrong explicit choice is not skipped
    with pytest.raises(MissingWeightsError, match="typo.pth"):
        weights.require("vgg16")

    config.write_text("[weights\n")
    monkeypatch.delenv("KEYDIFF3D_VGG16")
    with pytest.raises(ConfigError):
        weights.require("vgg16")


def test_wrong_architecture_and_truncated_files_are_detected(isolated_home):
    wrong = vgg_like(isolated_home / "wrong.pth", first=(32, 3, 3, 3))
    with pytest.raises(MissingWeightsError, match="VGG16"):
        weights.require("vgg16", wrong)
    good = vgg_like(isolated_home / "good.pth")
    cut = isolated_home / "cut.pth"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(MissingWeightsError, match="truncated or corrupt"):
        weights.require("vgg16", cut)
    assert weights.require("vgg16", cut, validate=False) == cut


def test_checksums_are_cached_by_path_size_and_mtime(isolated_home, capsys, monkeypatch):
    good = vgg_like(isolated_home / "good.pth")
    monkeypatch.setenv("KEYDIFF3D_VGG16", str(good))
    assert weights.sha256_of(good) == hashlib.sha256(good.read_bytes()).hexdigest()
    cache = json.loads((isolated_home / "cache" / "keydiff3d" / "sha256.json").read_text())
    assert list(cache.values()) == [hashlib.sha256(good.read_bytes()).hexdigest()]
    assert main(["weights"]) == 0
    text = capsys.readouterr().out
    assert "[ok     ] vgg16" in text and "sha256 " + cache[next(iter(cache))] in text and "[missing] sam" in text


def test_sv3d_and_svd_folders_validate(isolated_home):
    from keydiff3d.multiview.sv3d.testing import write_tiny_sv3d_checkpoint

    files = write_tiny_sv3d_checkpoint(isolated_home / "w" / "sv3d_p.safetensors")
    assert weights.require("sv3d_p", files.sv3d) == files.sv3d
    assert weights.require("svd_xt", files.svd_xt) == files.svd_xt
    (files.svd_xt / "vae" / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    with pytest.raises(MissingWeightsError, match="AutoencoderKLTemporalDecoder"):
        weights.require("svd_xt", files.svd_xt)
