# SPDX-License-Identifier: GPL-3.0-or-later
"""What each skinning method of rigcore takes, from rigcore's own description of its methods
(`rigcore.skinning.METHOD_PARAMETERS`; bpy-free, numpy + stdlib).

The Weights panel builds its method menu from `rigcore.skinning.METHODS` and each method's
parameter fields from `method_parameters(method)`, so a method added to rigcore appears in Blender
without a change here. A bundle stores the parameters it was skinned with as `skin.params`.
"""

from __future__ import annotations

from .rigcore.skinning import METHOD_PARAMETERS, METHODS, SkinningError

Value = float | int | bool


def method_parameters(method: str) -> dict[str, Value]:
    """{parameter: default} that `method` takes, in rigcore's order."""
    if method not in METHODS:
        raise SkinningError(f"unknown skinning method {method!r}; choose one of {', '.join(METHODS)}")
    return {parameter.name: parameter.default for parameter in METHOD_PARAMETERS[method]}


def method_params(method: str, params: dict, *, strict: bool = False) -> dict[str, Value]:
    """Those of `params` that `method` takes, cast to the parameter's type. Other names are dropped
    (a bundle's `skin.params` also holds derived values such as sigma_world), or, with `strict` (what
    the user typed), refused. Unknown methods and refused names raise `SkinningError`."""
    defaults = method_parameters(method)
    unknown = [name for name in params if name not in defaults]
    if strict and unknown:
        takes = ", ".join(defaults) or "no parameters"
        raise SkinningError(f"the {method} skinning has no parameter {unknown[0]!r}; it takes {takes}")
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
