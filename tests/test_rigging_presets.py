"""Category and export presets in presets/: all load, and malformed ones fail with clear messages."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from keydiff3d.paths import PRESETS_DIR
from keydiff3d_addon.rigcore import (
    CategoryPreset,
    ExportPreset,
    PresetError,
    build_skeleton,
    compute_skin_weights,
    list_presets,
    load_category_preset,
    load_export_preset,
    load_preset,
)


def test_shipped_presets_load_and_are_usable():
    assert set(list_presets(PRESETS_DIR, "category")) >= {"quadruped", "biped", "bird", "generic"}
    assert set(list_presets(PRESETS_DIR, "export")) >= {"unity", "unreal", "godot"}
    import trimesh

    keypoints = np.random.default_rng(0).normal(size=(6, 3))
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=4.0)  # a closed mesh around the skeleton
    for name in list_presets(PRESETS_DIR, "category"):
        preset = load_category_preset(name, PRESETS_DIR)
        assert isinstance(preset, CategoryPreset) and preset.name == name and preset.keypoints >= 2
        skeleton = build_skeleton(keypoints, np.ones((6, 6)), naming=preset.naming, **preset.skeleton.kwargs())
        skin = compute_skin_weights(sphere.vertices, skeleton, faces=sphere.faces, **preset.skinning.kwargs())
        assert skin.method == preset.skinning.method == "heat"


def test_export_presets_follow_game_engine_rules():
    for name in ("unity", "unreal", "godot"):
        preset = load_export_preset(name, PRESETS_DIR)
        assert isinstance(preset, ExportPreset)
        assert preset.add_leaf_bones is False and preset.use_armature_deform_only is True
        assert preset.max_influences <= 4 and preset.root_bone is True
    assert load_export_preset("unreal", PRESETS_DIR).armature_name == "Armature"
    assert load_export_preset("godot", PRESETS_DIR).format == "glb"
    assert load_export_preset("unity", PRESETS_DIR).apply_scale_options == "FBX_SCALE_ALL"


_CATEGORY = '[preset]\nname="x"\nkind="category"\n[model]\nkeypoints=8\n'


def _write(tmp_path, text: str):
    path = tmp_path / "x.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text,message",
    [
        (
            '[preset]\nname="x"\nkind="category"\n[model]\nkeypoints=8\n[skinning]\nsigm=0.1\n',
            "unknown key skinning.sigm",
        ),
        ('[preset]\nname="x"\nkind="category"\n[model]\nkeypoints=8\n[skinning]\nk="4"\n', "skinning.k must be int"),
        ('[preset]\nname="x"\nkind="category"\n[model]\nkeypoints=8\n[skinning]\nk=9\n', "between 1 and 4"),
        (
            '[preset]\nname="x"\nkind="category"\n[model]\nkeypoints=8\n[skeleton]\nleaf_bones=1\n',
            "leaf_bones must be bool",
        ),
        (
            '[preset]\nname="x"\nkind="category"\n[model]\nkeypoints=8\n[skinning]\nmethod="envelope"\n',
            "one of heat, gaussian",
        ),
        ('[preset]\nname="x"\nkind="category"\n[modle]\nkeypoints=8\n', "unknown section [modle]"),
        ('[preset]\nname="x"\nkind="category"\n', "the top level needs 'model'"),
        ('[preset]\nname="x"\nkind="category"\n[model]\n', "[model] needs 'keypoints'"),
        (_CATEGORY + "[skinning]\nsmooth_iterations=1000000\n", "smooth_iterations must be between 0 and 100"),
        (_CATEGORY + "[skinning]\nsharpness=3.0\n", "sharpness must be between 0.001 and 2"),  # METHOD_PARAMETERS
        (_CATEGORY + "[skinning]\nsigma=1.5\n", "sigma must be between 0.0001 and 1"),
        (_CATEGORY + "[skinning]\nsmooth_step=0.0001\n", "smooth_step must be between 0.001 and 1"),
        ('[preset]\nname="x"\nkind="thing"\n', "kind must be"),
        ('[preset]\nname="x"\nkind="export"\n[export]\naxis_up="up"\n', "axis_up must be one of"),
        ('[preset]\nname="x"\nkind="export"\n[export]\nmax_influences=8\n', "between 1 and 4"),
        (_CATEGORY + '[rig]\nmethod="mst"\n', "rig.method must be one of chain"),
        (_CATEGORY + "[rig]\nresolution=4\n", "between 16 and 512"),
        (_CATEGORY + 'checkpoint=""\n', "model.checkpoint must be non-empty"),
        ("[preset\n", "not valid TOML"),
    ],
)
def test_malformed_presets_name_the_file_and_key(tmp_path, text, message):
    with pytest.raises(PresetError) as error:
        load_preset(_write(tmp_path, text))
    assert message in str(error.value) and ("x.toml" in str(error.value))


@pytest.mark.parametrize(
    "value,message",
    [
        ("-0.5", "x.toml: skeleton.length_weight must be a finite number, zero or more, got -0.5"),
        ("nan", "x.toml: skeleton.length_weight must be a finite number, zero or more, got nan"),
        ('"strong"', "x.toml: skeleton.length_weight must be float, got 'strong'"),
        ("true", "x.toml: skeleton.length_weight must be float, got True"),
    ],
)
def test_length_weight_must_be_a_finite_nonnegative_number(tmp_path, value, message):
    with pytest.raises(PresetError) as error:
        load_preset(
            _write(
                tmp_path,
                f'[preset]\nname="x"\nkind="category"\n[model]\nkeypoints=8\n[skeleton]\nlength_weight={value}\n',
            )
        )
    assert str(error.value) == message  # one sentence naming the file, the key and the value


def test_length_weight_reaches_build_skeleton(tmp_path):
    preset = load_category_preset(
        _write(tmp_path, '[preset]\nname="x"\nkind="category"\n[model]\nkeypoints=8\n[skeleton]\nlength_weight=2\n')
    )
    assert preset.skeleton.kwargs()["length_weight"] == 2.0 and isinstance(preset.skeleton.length_weight, float)
    assert (
        load_category_preset(
            _write(tmp_path, '[preset]\nname="x"\nkind="category"\n[model]\nkeypoints=8\n')
        ).skeleton.length_weight
        == 0.0
    )


def test_integer_where_float_expected_is_accepted(tmp_path):
    preset = load_preset(
        _write(tmp_path, '[preset]\nname="x"\nkind="category"\n[model]\nkeypoints=8\n[skinning]\nsigma=1\n')
    )
    assert preset.skinning.sigma == 1.0 and isinstance(preset.skinning.sigma, float)


def test_unknown_and_wrong_kind_presets(tmp_path):
    with pytest.raises(PresetError, match="no preset named 'dragon'.*quadruped"):
        load_preset("dragon", PRESETS_DIR)
    with pytest.raises(PresetError, match="export preset"):
        load_category_preset("unity", PRESETS_DIR)
    with pytest.raises(PresetError, match="category preset"):
        load_export_preset("biped", PRESETS_DIR)


def test_default_and_custom_preset_folders(tmp_path):
    assert load_preset("biped").name == "biped"
    shutil.copy(PRESETS_DIR / "bird.toml", tmp_path / "bird.toml")
    assert list_presets(tmp_path) == ["bird"]


def test_rig_section_and_checkpoint_reach_the_preset(tmp_path):
    text = _CATEGORY + 'checkpoint="mine"\n[rig]\nmethod="fused"\nmax_bone=0\nmirror=false\n'
    preset = load_category_preset(_write(tmp_path, text))
    assert preset.checkpoint == "mine" and preset.rig.method == "fused"
    assert preset.rig.max_bone == 0.0 and preset.rig.mirror is False
    plain = load_category_preset(_write(tmp_path, _CATEGORY))
    # a preset without [rig] keeps the learned tree
    assert plain.checkpoint == "default" and plain.rig.method == "chain"


def test_every_shipped_preset_names_a_shipped_checkpoint_with_its_keypoint_count():
    from keydiff3d.model.checkpoint import read_checkpoint
    from keydiff3d.pipeline.keypoints import named_checkpoint

    for name in list_presets(PRESETS_DIR, "category"):
        preset = load_category_preset(name, PRESETS_DIR)
        path = named_checkpoint(preset.checkpoint) / "model.safetensors"
        assert path.is_file(), f"{name}: {path}"
        _, header = read_checkpoint(path)
        assert header.model_config.num_keypoints == preset.keypoints, name
