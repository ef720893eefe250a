"""The backend's one entry into the add-on's Blender-side modules (importer, exporter, weights): they
import `bpy`, so they are loaded here, on demand, in a process that has the bpy module (`keydiff3d
export`, the posed preview's render child, benchmarks). Everything else the backend shares with the
add-on is the bpy-free `keydiff3d_addon.rigcore`, imported directly.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import ConfigError


def addon_module(name: str) -> ModuleType:
    """`keydiff3d_addon.<name>`; a missing bpy module is a ConfigError that says how to install it."""
    try:
        return importlib.import_module(f"keydiff3d_addon.{name}")
    except ModuleNotFoundError as error:
        if error.name == "bpy":
            raise ConfigError(
                "the Blender module is not installed; install it with `pip install 'bpy==4.5.*'`"
            ) from error
        raise
