"""Training configs and checkpoints: presets load, unknown keys and broken checkpoints fail clearly."""

import json

import pytest
import torch
from test_model_checkpoint import raw_checkpoint

from keydiff3d.errors import ConfigError
from keydiff3d.training.checkpoint import load_model, read_checkpoint, save_checkpoint
from keydiff3d.training.config import TrainConfig, apply_overrides, load_config, preset_names
from keydiff3d.training.trainer import lr_lambda


def test_every_preset_loads():
    assert {"default", "bench", "tiny"} <= set(preset_names())
    for name in preset_names():
        config = load_config(name)
        assert config.model_config().num_keypoints == config.model.get("num_keypoints", 18)


def test_overrides_change_values_and_parse_types():
    config = load_config(
        "tiny", ["optim.steps=17", "data.dir=elsewhere", "model.num_keypoints=5", "logging.eval_at_end=false"]
    )
    assert config.optim.steps == 17 and config.data.dir == "elsewhere"
    assert config.model_config().num_keypoints == 5 and config.logging.eval_at_end is False


@pytest.mark.parametrize(
    "data, match",
    [
        ({"optim": {"stepz": 3}}, "t.toml: unknown key optim.stepz"),
        ({"colour": 1}, "t.toml: unknown key colour"),
        ({"model": {"num_keypointz": 3}}, "t.toml: unknown key model.num_keypointz"),
        ({"optim": {"steps": "many"}}, "t.toml: optim.steps must be int, got 'many'"),
        ({"optim": {"steps": 0}}, "t.toml: optim.steps must be at least 1, got 0"),
        ({"optim": {"schedule": "linear"}}, "schedule must be"),
        ({"data": 3}, "must be a table"),
    ],
)
def test_bad_configs_raise_one_clear_sentence(tmp_path, data, match):
    path = tmp_path / "t.toml"
    path.write_text(_to_toml(data))
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_an_integer_loads_where_a_float_is_expected(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(_to_toml({"model": {"heatmap_sigma": 1}, "optim": {"grad_clip": 2}}))
    config = load_config(path)
    assert config.optim.grad_clip == 2.0 and isinstance(config.optim.grad_clip, float)
    assert config.model_config().heatmap_sigma == 1.0 and isinstance(config.model_config().heatmap_sigma, float)


def _to_toml(data: dict) -> str:
    top = [f"{k} = {json.dumps(v)}" for k, v in data.items() if not isinstance(v, dict)]
    tables = [
        f"[{k}]\n" + "\n".join(f"{kk} = {json.dumps(vv)}" for kk, vv in v.items())
        for k, v in data.items()
        if isinstance(v, dict)
    ]
    return "\n".join(top + tables) + "\n"


def test_missing_preset_and_file():
    with pytest.raises(ConfigError, match="no training preset named 'nope'"):
        load_config("nope")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("missing/run.toml")
    with pytest.raises(ConfigError, match="look like section.key=value"):
        apply_overrides({}, ["optim.steps"])


def test_schedule_warmup_then_cosine_to_zero():
    config = load_config("tiny", ["optim.steps=10", "optim.warmup_steps=2"])
    f = lr_lambda(config.optim)
    assert [f(0), f(1)] == [0.5, 1.0]
    assert f(2) == pytest.approx(1.0) and f(10) == pytest.approx(0.0, abs=1e-12)
    assert all(f(s) >= f(s + 1) for s in range(2, 10))


def _tiny_model(config: TrainConfig):
    from keydiff3d.training.checkpoint import build_model

    torch.manual_seed(0)
    return build_model(config)


def test_checkpoint_round_trip(tmp_path):
    config = load_config("tiny")
    model = _tiny_model(config)
    path = save_checkpoint(tmp_path / "m.safetensors", model, config, {"note": "x", "eval": {"mpjpe": 1.5}})
    loaded, loaded_config, metadata = load_model(path)
    assert loaded_config.to_dict() == config.to_dict()
    assert metadata == {"note": "x", "eval": {"mpjpe": 1.5}}
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    assert not loaded.training
    loaded_dir, _, _ = load_model(tmp_path / "m.safetensors")  # a folder holding model.safetensors also works
    assert loaded_dir is not None


def test_missing_corrupt_and_foreign_checkpoints(tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint file at"):
        load_model(tmp_path / "absent.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(ConfigError, match="corrupt or not a safetensors file"):
        load_model(corrupt)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ConfigError, match="not a KeyDiff3D checkpoint"):
        load_model(foreign)


def test_truncated_checkpoint_is_reported_as_corrupt(tmp_path):
    config = load_config("tiny")
    path = save_checkpoint(tmp_path / "m.safetensors", _tiny_model(config), config, {})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match="corrupt"):
        load_model(path)


def test_mismatched_checkpoint_names_the_problem(tmp_path):
    config = load_config("tiny")
    path = save_checkpoint(tmp_path / "m.safetensors", _tiny_model(config), config, {})
    state, _, metadata = read_checkpoint(path)
    # the same weights under a config that describes a different architecture
    other = load_config("tiny", ["model.num_keypoints=7"])
    raw_checkpoint(path, state, "1", config=json.dumps(other.to_dict()))
    with pytest.raises(ConfigError, match="does not match the model its config describes"):
        load_model(path)
    raw_checkpoint(path, state, "99", config=json.dumps(config.to_dict()))
    with pytest.raises(ConfigError, match="format version '99'"):
        load_model(path)
    bad = config.to_dict()
    bad["optim"]["turbo"] = True
    raw_checkpoint(path, state, "1", config=json.dumps(bad))
    with pytest.raises(ConfigError, match="unknown key optim.turbo"):
        load_model(path)


def test_publish_writes_weights_config_and_readme(tmp_path):
    from keydiff3d.training.checkpoint import publish

    config = load_config("tiny")
    evaluation = {
        "unit": "milli-extent",
        "num_train": 8,
        "num_test": 4,
        "mpjpe": 123.45,
        "n_mpjpe": 120.0,
        "p_mpjpe": 90.0,
        "linear_mpjpe": 130.0,
        "mean_pose_mpjpe": 280.0,
        "cd_j2j": 140.0,
        "cd_j2b": 110.0,
    }
    metadata = {"step": 4, "training_command": "keydiff3d train tiny", "eval": evaluation, "num_views": 2}
    src = save_checkpoint(tmp_path / "run" / "model.safetensors", _tiny_model(config), config, metadata)
    dest = tmp_path / "published"
    publish(src, dest)
    readme = (dest / "README.md").read_text()
    assert "keydiff3d train tiny" in readme and "| 123.5 |" in readme
    assert json.loads((dest / "config.json").read_text()) == config.to_dict()
    _, _, loaded = load_model(dest)
    assert loaded == metadata
