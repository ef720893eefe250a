"""rigcore.config: a table -> a typed frozen dataclass, every key and value checked, one sentence per error."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import pytest

from keydiff3d_addon.rigcore.config import (
    between,
    finite_non_negative,
    in_interval,
    load,
    multiple_of,
    non_empty,
    positive,
    validate,
)

METHODS = ("gaussian", "heat")


class Bad(ValueError):
    pass


@dataclass(frozen=True)
class Skinning:
    method: Literal[METHODS] = "gaussian"
    sigma: Annotated[float, positive] = 0.08
    k: Annotated[int, between(1, 4)] = 4
    smooth_step: Annotated[float, in_interval(0, 1, low_open=True)] = 0.5


@dataclass(frozen=True)
class Skeleton:
    root: str | int = "center"
    leaf_bones: bool = False
    length_weight: Annotated[float, finite_non_negative] = 0.0
    channels: tuple[int, ...] = (16, 32)
    size: Annotated[int, multiple_of(8)] = 64
    pair: tuple[int, str] = (1, "a")


@dataclass(frozen=True)
class Model:
    keypoints: Annotated[int, between(2, 64)]
    checkpoint: Annotated[str, non_empty] = "default"
    note: str | None = None


@dataclass(frozen=True)
class PresetFile:
    model: Model
    skeleton: Skeleton = field(default_factory=Skeleton)
    skinning: Skinning = field(default_factory=Skinning)
    categories: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.skinning.method == "heat" and self.skinning.k > 2:
            raise Bad("heat skinning takes at most 2 influences here")


def _load(data):
    return load(PresetFile, data, source="x.toml", error=Bad)


def test_nested_tables_become_typed_frozen_dataclasses():
    preset = _load(
        {
            "model": {"keypoints": 8},
            "skinning": {"sigma": 1, "k": 2},
            "skeleton": {"channels": [8, 16, 24]},
            "categories": ["bird"],
            "extra": {"any": [1, "x"]},
        }
    )
    assert preset.model == Model(keypoints=8) and preset.skinning == Skinning(sigma=1.0, k=2)
    assert isinstance(preset.skinning.sigma, float)  # an int is stored as a float where a float is expected
    assert preset.skeleton.channels == (8, 16, 24) and isinstance(preset.skeleton.channels, tuple)
    assert preset.categories == ["bird"] and preset.extra == {"any": [1, "x"]}
    assert _load({"model": {"keypoints": 2, "note": None}}).model.note is None
    assert _load({"model": {"keypoints": 2}, "skeleton": {"root": 3}}).skeleton.root == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset.model.keypoints = 3  # type: ignore[misc]


MODEL = {"model": {"keypoints": 8}}
ALL_SECTIONS = "(known: model, skeleton, skinning, categories, extra)"


@pytest.mark.parametrize(
    "data, message",
    [
        ({"skinning": {"sigma": -1}}, "x.toml: skinning.sigma must be positive, got -1"),
        ({"skinning": {"sigm": 0.1}}, "x.toml: unknown key skinning.sigm (known: method, sigma, k, smooth_step)"),
        ({"skinnin": {"k": 1}}, f"x.toml: unknown section [skinnin] {ALL_SECTIONS}"),
        ({"colour": 1}, f"x.toml: unknown key colour {ALL_SECTIONS}"),
        ({"skinning": {"k": "4"}}, "x.toml: skinning.k must be int, got '4'"),
        ({"skinning": {"k": True}}, "x.toml: skinning.k must be int, got True"),
        ({"skinning": {"k": 2.0}}, "x.toml: skinning.k must be int, got 2.0"),
        ({"skinning": {"sigma": True}}, "x.toml: skinning.sigma must be float, got True"),
        ({"skinning": {"k": 9}}, "x.toml: skinning.k must be between 1 and 4, got 9"),
        ({"skinning": {"smooth_step": 0}}, "x.toml: skinning.smooth_step must be in (0, 1], got 0"),
        ({"skinning": {"method": "bone"}}, "x.toml: skinning.method must be one of gaussian, heat, got 'bone'"),
        ({"skeleton": {"leaf_bones": 1}}, "x.toml: skeleton.leaf_bones must be bool, got 1"),
        ({"skeleton": {"root": 1.5}}, "x.toml: skeleton.root must be str or int, got 1.5"),
        (
            {"skeleton": {"length_weight": float("nan")}},
            "x.toml: skeleton.length_weight must be a finite number, zero or more, got nan",
        ),
        ({"skeleton": {"channels": [8, "x"]}}, "x.toml: skeleton.channels[1] must be int, got 'x'"),
        ({"skeleton": {"channels": 8}}, "x.toml: skeleton.channels must be a list of int, got 8"),
        ({"skeleton": {"pair": [1]}}, "x.toml: skeleton.pair must be a list of 2 (int, str), got [1]"),
        ({"skeleton": {"size": 12}}, "x.toml: skeleton.size must be a multiple of 8, got 12"),
        ({"skeleton": 3}, "x.toml: skeleton must be a table, got 3"),
        ({"model": {"keypoints": 8, "checkpoint": " "}}, "x.toml: model.checkpoint must be non-empty, got ' '"),
        ({"categories": ["a", 2]}, "x.toml: categories[1] must be str, got 2"),
        ({"model": {}}, "x.toml: [model] needs 'keypoints'"),
        ({"model": None}, "x.toml: model must be a table, got None"),
        ({"skinning": {"method": "heat"}}, "x.toml: heat skinning takes at most 2 influences here"),
    ],
)
def test_every_error_is_one_sentence_naming_the_source_and_key_path(data, message):
    with pytest.raises(Bad) as error:
        _load({**MODEL, **data})
    assert str(error.value) == message


def test_missing_sections_and_non_tables():
    with pytest.raises(Bad, match=r"^x.toml: the top level needs 'model'$"):
        _load({})
    with pytest.raises(Bad, match=r"^x.toml must be a table of keys, got list$"):
        _load([1, 2])


def test_path_prefix_and_checks_across_fields_in_a_nested_table():
    with pytest.raises(Bad, match=r"^run.toml: preset.skinning.k must be between 1 and 4, got 0$"):
        load(PresetFile, {**MODEL, "skinning": {"k": 0}}, source="run.toml", error=Bad, path="preset")
    with pytest.raises(Bad, match=r"^run.toml: preset: heat skinning"):
        load(PresetFile, {**MODEL, "skinning": {"method": "heat"}}, source="run.toml", error=Bad, path="preset")


@dataclass(frozen=True)
class Checked:
    """Checks on direct construction too: validate() in __post_init__."""

    size: Annotated[int, positive] = 1
    kind: Literal["a", "b"] = "a"
    scale: Annotated[float, positive] | None = None

    def __post_init__(self) -> None:
        validate(self, source="checked", error=Bad)


def test_validate_applies_the_same_rules_to_a_directly_built_instance():
    assert Checked(size=3, kind="b", scale=2.0).size == 3
    with pytest.raises(Bad, match=r"^checked: size must be positive, got 0$"):
        Checked(size=0)
    with pytest.raises(Bad, match=r"^checked: kind must be one of a, b, got 'c'$"):
        Checked(kind="c")
    with pytest.raises(Bad, match=r"^checked: scale must be positive, got -1.0$"):
        Checked(scale=-1.0)
    with pytest.raises(Bad, match=r"^y.json: size must be positive, got -2$"):
        load(Checked, {"size": -2}, source="y.json", error=Bad)


def test_unsupported_annotations_are_a_programming_error():
    @dataclass(frozen=True)
    class Odd:
        value: complex = 1j

    with pytest.raises(TypeError, match="not supported"):
        load(Odd, {"value": 2}, source="z", error=Bad)
