"""A preset's keypoint count reaches the model or is refused (keydiff3d.pipeline.keypoints.preset_model)."""

from __future__ import annotations

import pytest
import torch
from pipeline_support import write_tiny_checkpoint

from keydiff3d.errors import ConfigError
from keydiff3d.pipeline.keypoints import preset_model
from keydiff3d_addon.rigcore import load_category_preset


def _preset(tmp_path, keypoints: int, checkpoint: str):
    path = tmp_path / f"p{keypoints}.toml"
    path.write_text(f'[preset]\nname="p"\nkind="category"\n[model]\nkeypoints={keypoints}\ncheckpoint="{checkpoint}"\n')
    return load_category_preset(path)


def test_the_presets_checkpoint_must_predict_its_keypoint_count(tmp_path):
    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.safetensors")  # 6 keypoints
    model = preset_model(_preset(tmp_path, 6, str(checkpoint)), None, torch.device("cpu"))
    assert model.model.config.num_keypoints == 6
    with pytest.raises(ConfigError, match="asks for 8 keypoints but its checkpoint .* predicts 6"):
        preset_model(_preset(tmp_path, 8, str(checkpoint)), None, torch.device("cpu"))
    # a checkpoint the caller names is the caller's choice of model
    assert (
        preset_model(_preset(tmp_path, 8, "default"), checkpoint, torch.device("cpu")).model.config.num_keypoints == 6
    )


def test_warm_up_loads_the_model_the_default_preset_runs():
    from keydiff3d.pipeline.models import MODELS
    from keydiff3d.pipeline.run import warm_up
    from keydiff3d_addon.rigcore.presets import default_preset_name

    MODELS.clear()
    assert warm_up("cpu") == "cpu"
    preset = load_category_preset(default_preset_name("category"))
    loaded = MODELS.loaded()
    assert len(loaded) == 1 and f"checkpoints/{preset.checkpoint}/" in loaded[0]
    assert preset.checkpoint != "default"  # the case warm-up once got wrong: checkpoints/default (18 keypoints)
    MODELS.clear()
