# SPDX-License-Identifier: GPL-3.0-or-later
"""KeyDiff3D Blender extension: rig a creature from one image, import rig bundles, export to engines.

Importing this package does not import bpy: the backend reuses `keydiff3d_addon.rigcore` and
`keydiff3d_addon.importer` in the bpy module without the UI. `register()` imports the UI modules
listed in `UI_MODULES`; each module exposes `CLASSES` (registered in order) and may define
`register_extra()` / `unregister_extra()` for what is not a class (scene properties, handlers).
A new UI module joins by being added to the list. The backend client (`client/`) is bpy-free.
"""

from __future__ import annotations

import importlib
from types import ModuleType

UI_MODULES: tuple[str, ...] = ("preferences", "properties", "operators", "backend_operators", "panels")

_registered: list[ModuleType] = []


def _ui_modules() -> list[ModuleType]:
    return [importlib.import_module(f".{name}", __package__) for name in UI_MODULES]


def register() -> None:
    import bpy

    for module in _ui_modules():
        for cls in getattr(module, "CLASSES", ()):
            bpy.utils.register_class(cls)
        if hasattr(module, "register_extra"):
            module.register_extra()
        _registered.append(module)


def unregister() -> None:
    import bpy

    while _registered:
        module = _registered.pop()
        if hasattr(module, "unregister_extra"):
            module.unregister_extra()
        for cls in reversed(getattr(module, "CLASSES", ())):
            bpy.utils.unregister_class(cls)
