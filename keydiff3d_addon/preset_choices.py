# SPDX-License-Identifier: GPL-3.0-or-later
"""The add-on's preset menus over the TOML presets that rigcore's `default_presets_dir` finds: `presets/`
inside the built extension, or the top-level `presets/` when run from the source tree. Parsing and
validation are rigcore's; the default of each menu is the preset marked `default = true` (the CLI's
default too)."""

from __future__ import annotations

from pathlib import Path

from .rigcore.presets import (
    CategoryPreset,
    ExportPreset,
    PresetError,
    default_preset_name,
    default_presets_dir,
    list_presets,
    load_category_preset,
    load_export_preset,
)


def presets_dir() -> Path:
    folder = default_presets_dir()
    if not folder.is_dir():
        raise PresetError(f"no presets folder next to the add-on ({folder})")
    return folder


def _names(kind: str) -> list[str]:
    try:
        return list_presets(presets_dir(), kind=kind)
    except PresetError:
        return []


def category_preset_names() -> list[str]:
    """Category presets (quadruped, biped, bird, generic)."""
    return _names("category")


def export_preset_names() -> list[str]:
    """Export presets (unity, unreal, godot)."""
    return _names("export")


def default_category() -> str:
    """The category preset marked `default = true` (quadruped)."""
    return default_preset_name("category", presets_dir())


def default_export() -> str:
    """The export preset marked `default = true` (unity)."""
    return default_preset_name("export", presets_dir())


def default_index(kind: str) -> int:
    """Position of the default preset in its menu: a dynamic EnumProperty's default must be an index."""
    names, default = (
        (category_preset_names(), default_category) if kind == "category" else (export_preset_names(), default_export)
    )
    try:
        return names.index(default())
    except (PresetError, ValueError):
        return 0


# Blender keeps only pointers to dynamic enum strings: the item lists must outlive the callback.
_enum_cache: dict[str, list[tuple[str, str, str]]] = {}


def _enum_items(kind: str, names: list[str]) -> list[tuple[str, str, str]]:
    items = [(name, name.replace("_", " ").title(), f"{kind.title()} preset {name}") for name in names]
    _enum_cache[kind] = items or [("NONE", "None", f"no {kind} presets found")]
    return _enum_cache[kind]


def category_enum_items(self, context) -> list[tuple[str, str, str]]:
    """EnumProperty items callback listing the category presets."""
    return _enum_items("category", category_preset_names())


def export_enum_items(self, context) -> list[tuple[str, str, str]]:
    """EnumProperty items callback listing the export presets."""
    return _enum_items("export", export_preset_names())


def category_preset(name: str) -> CategoryPreset:
    return load_category_preset(name, presets_dir())


def export_preset(name: str) -> ExportPreset:
    return load_export_preset(name, presets_dir())
