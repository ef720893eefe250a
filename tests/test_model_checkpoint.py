"""KeyDiff3D.from_checkpoint: the model config in the file's header, both format versions, clear failures."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from test_model_keydiff3d import TINY as TINY_MODEL

from keydiff3d.errors import ConfigError
from keydiff3d.model import KeyDiff3D, KeyDiff3DConfig
from keydiff3d.model.checkpoint import DEFAULT_CHECKPOINT, FORMAT_VERSION, save_checkpoint
from keydiff3d.training.checkpoint import load_model
from keydiff3d.training.checkpoint import save_checkpoint as save_training_checkpoint
from keydiff3d.training.config import load_config

torch.set_num_threads(1)

TINY = {**TINY_MODEL, "num_keypoints": 5, "softargmax_beta": 3.5, "perceptual_loss": "pyramid"}


def _tiny(seed: int = 0) -> KeyDiff3D:
    torch.manual_seed(seed)
    return KeyDiff3D(KeyDiff3DConfig(**TINY))


def raw_checkpoint(path, state: dict, version: str, **entries: str) -> None:
    """A checkpoint file with a hand-written header (`metadata` "{}" unless given)."""
    header = {"format": "keydiff3d-checkpoint", "format_version": version, "metadata": "{}", **entries}
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata=header)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_round_trip_rebuilds_the_architecture_from_the_header(tmp_path):
    model = _tiny()
    path = save_checkpoint(tmp_path / "run" / "model.safetensors", model, {"note": "x"})
    with safe_open(str(path), framework="pt") as handle:
        header = handle.metadata()
    assert header["format_version"] == FORMAT_VERSION == "2" and "training_config" not in header
    assert json.loads(header["model_config"]) == model.config.to_dict()

    for where in (path, tmp_path / "run"):  # the file or the folder holding model.safetensors
        loaded = KeyDiff3D.from_checkpoint(where, "cpu")
        assert loaded.config == model.config and _same_weights(loaded, model) and not loaded.training
        assert loaded.checkpoint.metadata == {"note": "x"} and loaded.checkpoint.path == path.resolve()
        assert loaded.checkpoint.training_config is None
    with pytest.raises(ConfigError, match="holds no training config"):
        load_model(path)  # training needs its own config; inference does not


def test_training_checkpoints_carry_both_configs(tmp_path):
    config = load_config("tiny")
    torch.manual_seed(0)
    model = KeyDiff3D(config.model_config())
    path = save_training_checkpoint(tmp_path / "m.safetensors", model, config, {"step": 3})
    loaded = KeyDiff3D.from_checkpoint(path)
    assert loaded.config == model.config and _same_weights(loaded, model)
    assert loaded.checkpoint.training_config == config.to_dict()
    _, train_config, metadata = load_model(path)
    assert train_config == config and metadata == {"step": 3}


def test_format_version_1_still_loads(tmp_path):
    """Version 1 (the shipped default, older `keydiff3d train` runs): the TrainConfig's [model] table."""
    config = load_config("tiny", ["model.num_keypoints=7", "model.perceptual_loss='pyramid'"])
    torch.manual_seed(1)
    model = KeyDiff3D(config.model_config())
    path = tmp_path / "v1.safetensors"
    raw_checkpoint(path, model.state_dict(), "1", config=json.dumps(config.to_dict()), metadata=json.dumps({"step": 9}))
    loaded = KeyDiff3D.from_checkpoint(path)
    assert loaded.checkpoint.format_version == "1" and loaded.checkpoint.metadata == {"step": 9}
    assert loaded.config == model.config and _same_weights(loaded, model)
    assert load_model(path)[1] == config


@pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="the shipped checkpoint is not in this tree")
def test_the_shipped_default_is_a_version_1_file_and_loads():
    model = KeyDiff3D.from_checkpoint()
    assert model.checkpoint.format_version == "1" and model.checkpoint.path == DEFAULT_CHECKPOINT
    shipped = json.loads((DEFAULT_CHECKPOINT.parent / "config.json").read_text())
    assert model.config == KeyDiff3DConfig.from_dict(
        {**shipped["model"], "perceptual_loss": model.config.perceptual_loss}
    )
    assert model.config.num_keypoints == shipped["model"]["num_keypoints"]


@pytest.mark.parametrize(
    "content, words",
    [
        (None, "no checkpoint file at"),
        (b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all", "corrupt or not a safetensors file"),
        (b"", "corrupt or not a safetensors file"),
    ],
    ids=["missing", "corrupt", "empty"],
)
def test_missing_or_corrupt_files_give_one_sentence(tmp_path, content, words):
    path = tmp_path / "model.safetensors"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=words) as error:
        KeyDiff3D.from_checkpoint(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_truncated_foreign_and_unknown_version_files(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", _tiny(), {})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match="corrupt"):
        KeyDiff3D.from_checkpoint(path)
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ConfigError, match="not a KeyDiff3D checkpoint"):
        KeyDiff3D.from_checkpoint(path)
    raw_checkpoint(path, {"w": torch.zeros(2)}, "3")
    with pytest.raises(ConfigError, match="format version '3'; this code reads versions 1 and 2"):
        KeyDiff3D.from_checkpoint(path)


def test_header_that_does_not_fit_the_weights_or_the_config(tmp_path):
    model = _tiny()
    state, path = model.state_dict(), tmp_path / "m.safetensors"
    other = {**model.config.to_dict(), "num_keypoints": 7}
    raw_checkpoint(path, state, "2", model_config=json.dumps(other))
    with pytest.raises(ConfigError, match="does not match the model its config describes"):
        KeyDiff3D.from_checkpoint(path)
    raw_checkpoint(path, state, "2", model_config=json.dumps({**other, "voxel_size": "big"}))
    with pytest.raises(ConfigError, match="^checkpoint m.safetensors: model_config.voxel_size must be int, got 'big'$"):
        KeyDiff3D.from_checkpoint(path)
    raw_checkpoint(path, state, "2")
    with pytest.raises(ConfigError, match="unreadable config header"):
        KeyDiff3D.from_checkpoint(path)
