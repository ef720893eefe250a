# SPDX-License-Identifier: GPL-3.0-or-later
"""What each skinning method of rigcore takes, found from rigcore itself (bpy-free, numpy + stdlib).

The Weights panel builds its method menu from `rigcore.skinning.METHODS` and each method's
parameter fields from `method_parameters(method)`, so a method added to rigcore appears in Blender
without a change here. A method's parameters are the keyword arguments of `compute_skin_weights`
that it reports back in `SkinWeights.params` (the record a bundle stores as `skin.params`), found
by running it once on a small probe mesh; their defaults and types are the signature's.
"""

from __future__ import annotations

import inspect
from functools import cache

import numpy as np

from .rigcore.skeleton import Bone
from .rigcore.skinning import METHODS, SkinningError, compute_skin_weights

# keyword arguments of compute_skin_weights that are inputs or plumbing, never a method's parameter
NOT_PARAMETERS = {"vertices", "skeleton_or_bones", "method", "k", "faces", "chunk", "progress"}
Value = float | int | bool


def _signature_defaults() -> dict[str, Value]:
    parameters = inspect.signature(compute_skin_weights).parameters.values()
    return {
        p.name: p.default
        for p in parameters
        if p.name not in NOT_PARAMETERS and isinstance(p.default, (bool, int, float))
    }


def _probe_mesh() -> tuple[np.ndarray, np.ndarray, list[Bone]]:
    """A closed square tube along z (3 rings of 4 vertices, capped) over two bones."""
    ring = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], np.float64) * 0.3
    vertices = np.concatenate([np.column_stack([ring, np.full(4, z)]) for z in (0.0, 1.0, 2.0)])
    faces = []
    for level in range(2):
        for i in range(4):
            a, b = 4 * level + i, 4 * level + (i + 1) % 4
            faces += [[a, b, b + 4], [a, b + 4, a + 4]]
    faces += [[0, 2, 1], [0, 3, 2], [8, 9, 10], [8, 10, 11]]
    bones = [
        Bone("lower", np.zeros(3), np.array([0.0, 0.0, 1.0]), None, keypoint=1),
        Bone("upper", np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, 2.0]), "lower", keypoint=2),
    ]
    return vertices, np.array(faces, np.int32), bones


@cache
def _parameters(method: str) -> tuple[tuple[str, Value], ...]:
    defaults = _signature_defaults()
    vertices, faces, bones = _probe_mesh()
    try:
        reported = compute_skin_weights(vertices, bones, method=method, faces=faces).params
        names = [name for name in defaults if name in reported]
    except SkinningError:  # a method the probe cannot run: offer every parameter rather than none
        names = list(defaults)
    return tuple((name, defaults[name]) for name in names)


def method_parameters(method: str) -> dict[str, Value]:
    """{parameter: default} that `method` takes, in `compute_skin_weights`' order."""
    if method not in METHODS:
        raise SkinningError(f"unknown skinning method {method!r}; choose one of {', '.join(METHODS)}")
    return dict(_parameters(method))


def method_params(method: str, params: dict) -> dict[str, Value]:
    """Those of `params` (e.g. a bundle's `skin.params`, which also holds derived values such as
    sigma_world) that `method` takes, cast to the parameter's type. Unknown methods raise `SkinningError`."""
    defaults = method_parameters(method)
    kept: dict[str, Value] = {}
    for name, value in params.items():
        if name in defaults:
            kind = type(defaults[name])
            try:
                kept[name] = bool(value) if kind is bool else kind(value)
            except (TypeError, ValueError):
                raise SkinningError(f"skinning parameter {name} must be a {kind.__name__}, got {value!r}") from None
    return kept


def skin_kwargs(method: str, params: dict) -> dict:
    """Keyword arguments for `compute_skin_weights`: `method` and its parameters among `params`."""
    return {"method": method, **method_params(method, params)}
