"""One typed loader for configs: a table (TOML, JSON) -> a (nested, frozen) dataclass, every key checked.

Stdlib only, so it runs inside Blender. The dataclass says everything; nothing is repeated in a schema:

    @dataclass(frozen=True)
    class Skinning:
        method: Literal[METHODS] = "gaussian"             # one of a tuple of choices
        sigma: Annotated[float, positive] = 0.08          # a range check beside the field
        k: Annotated[int, between(1, 4)] = 4
        root: str | int = "center"                        # either type; `X | None` accepts None (JSON null)
        channels: tuple[int, ...] = (16, 32)              # from a list; tuple[int, int] fixes the length

    @dataclass(frozen=True)
    class File:
        skinning: Skinning = field(default_factory=Skinning)   # a nested [skinning] table

    load(File, tomllib.loads(text), source="x.toml", error=PresetError)

Types come from the annotations, resolved with `typing.get_type_hints` (so `from __future__ import
annotations` and names of the defining module work). An int is accepted (and stored) as a float where
a float is expected; a bool is never an int or a float. Unknown keys are refused, fields without a
default are required. Every error is `error(one sentence)` naming the source and the key path, e.g.
`x.toml: skinning.sigma must be positive, got -1`. Errors that the dataclass's own `__post_init__`
raises (checks across fields) get the source and path put in front.

`validate(instance, ...)` applies the choices and checks to an instance built directly (call it from
`__post_init__`, so direct construction and loading refuse the same values).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar, Union

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Check:
    """A range rule for one value: `test(value)` must hold; `description` completes "must be ..."."""

    test: Callable[[Any], bool]
    description: str

    def __call__(self, value: Any) -> bool:
        return bool(self.test(value))


def at_least(low: float) -> Check:
    return Check(lambda v: v >= low, f"at least {low}")


def between(low: float, high: float) -> Check:
    """low <= value <= high."""
    return Check(lambda v: low <= v <= high, f"between {low} and {high}")


def in_interval(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Check:
    """A value in an interval written the mathematical way: in [0, 1), in (0, 1], ..."""

    def test(v: Any) -> bool:
        return (v > low if low_open else v >= low) and (v < high if high_open else v <= high)

    return Check(test, f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}")


def multiple_of(step: int) -> Check:
    return Check(lambda v: v % step == 0, f"a multiple of {step}")


positive = Check(lambda v: v > 0, "positive")
non_negative = Check(lambda v: v >= 0, "zero or more")
finite_non_negative = Check(lambda v: math.isfinite(v) and v >= 0, "a finite number, zero or more")
non_empty = Check(lambda v: len(v.strip() if isinstance(v, str) else v) > 0, "non-empty")


def load(cls: type[T], data: Any, *, source: str, error: type[Exception], path: str = "") -> T:
    """`cls` (a dataclass) built from the mapping `data`, every key and value checked.

    source: what the data came from, first in every message ("x.toml", "checkpoint m.safetensors").
    error:  the exception class raised with the one-sentence message (PresetError, ConfigError, ...).
    path:   the key path of `data` inside the source ("model" when it is the [model] table), for messages.
    """
    return _Loader(source, error).dataclass(cls, data, path)


def validate(instance: Any, *, source: str, error: type[Exception]) -> None:
    """Apply the choices (Literal) and checks (Annotated) of `instance`'s fields to its values."""
    loader = _Loader(source, error)
    for name, hint in _hints(type(instance)).items():
        loader.rules(hint, getattr(instance, name), name)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """Field name -> resolved annotation (Annotated kept), in field order."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


class _Mismatch(Exception):
    """A value of the wrong type (internal: turned into the caller's error with the key path)."""


class _Loader:
    def __init__(self, source: str, error: type[Exception]) -> None:
        self.source = source
        self.error = error

    def fail(self, message: str) -> Exception:
        return self.error(f"{self.source}: {message}")

    # -- tables

    def dataclass(self, cls: type, data: Any, path: str) -> Any:
        hints = _hints(cls)
        if not isinstance(data, Mapping):
            if not path:
                raise self.error(f"{self.source} must be a table of keys, got {type(data).__name__}")
            raise self.fail(f"{path} must be a table, got {data!r}")
        for key, value in data.items():
            if key not in hints:
                known = ", ".join(hints)
                where = _join(path, str(key))
                if isinstance(value, Mapping):
                    raise self.fail(f"unknown section [{where}] (known: {known})")
                raise self.fail(f"unknown key {where} (known: {known})")
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        for name, f in fields.items():
            if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                section = f"[{path}]" if path else "the top level"
                raise self.fail(f"{section} needs {name!r}")
        values = {name: self.value(hints[name], data[name], _join(path, name)) for name in hints if name in data}
        try:
            return cls(**values)
        except self.error as failure:  # a check across fields in __post_init__
            message = str(failure)
            if message.startswith(f"{self.source}:"):
                raise
            raise self.fail(f"{path}: {message}" if path else message) from None

    # -- values

    def value(self, hint: Any, value: Any, path: str) -> Any:
        try:
            converted = self.convert(hint, value, path)
        except _Mismatch:
            raise self.fail(f"{path} must be {_describe(hint)}, got {value!r}") from None
        self.rules(hint, converted, path, shown=value)
        return converted

    def rules(self, hint: Any, value: Any, path: str, shown: Any = None) -> None:
        """Literal choices and Annotated checks of `hint` on an already typed `value`; messages show
        `shown` (the value as written, e.g. -1 for a float field) when given."""
        shown = value if shown is None else shown
        origin = typing.get_origin(hint)
        if origin is Annotated:
            inner, *extras = typing.get_args(hint)
            self.rules(inner, value, path, shown)
            for check in extras:
                if isinstance(check, Check) and not check(value):
                    raise self.fail(f"{path} must be {check.description}, got {shown!r}")
        elif origin is Literal:
            if not any(value == choice and type(value) is type(choice) for choice in typing.get_args(hint)):
                raise self.fail(f"{path} must be one of {', '.join(map(str, typing.get_args(hint)))}, got {shown!r}")
        elif origin in (Union, types.UnionType):
            for arm in typing.get_args(hint):
                if _fits(arm, value):
                    self.rules(arm, value, path, shown)
                    return

    def convert(self, hint: Any, value: Any, path: str) -> Any:
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if hint is Any:
            return value
        if origin is Annotated:
            return self.convert(args[0], value, path)
        if origin is Literal:
            return value  # the choice is checked by `rules`
        if origin in (Union, types.UnionType):
            for arm in args:
                try:
                    return self.convert(arm, value, path)
                except _Mismatch:
                    continue
            raise _Mismatch
        if hint is type(None):
            if value is not None:
                raise _Mismatch
            return None
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, Mapping):
                raise _Mismatch
            return self.dataclass(hint, value, path)
        if hint is bool:
            if not isinstance(value, bool):
                raise _Mismatch
            return value
        if hint is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise _Mismatch
            return value
        if hint is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _Mismatch
            return float(value)
        if hint is str:
            if not isinstance(value, str):
                raise _Mismatch
            return value
        if hint in (tuple, list, dict):
            return self.convert({tuple: tuple[Any, ...], list: list[Any], dict: dict[str, Any]}[hint], value, path)
        if origin in (tuple, list):
            if not isinstance(value, (list, tuple)):
                raise _Mismatch
            if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
                if len(value) != len(args):
                    raise _Mismatch
                return tuple(self.value(arm, item, f"{path}[{i}]") for i, (arm, item) in enumerate(zip(args, value)))
            items = [self.value(args[0] if args else Any, item, f"{path}[{i}]") for i, item in enumerate(value)]
            return tuple(items) if origin is tuple else items
        if origin is dict:
            if not isinstance(value, Mapping):
                raise _Mismatch
            key_hint, value_hint = args or (str, Any)
            out = {}
            for key, item in value.items():
                if not _fits(key_hint, key):
                    raise self.fail(f"{path} keys must be {_describe(key_hint)}, got {key!r}")
                out[key] = self.value(value_hint, item, _join(path, str(key)))
            return out
        raise TypeError(f"config field {path}: annotation {hint!r} is not supported by rigcore.config")


def _fits(hint: Any, value: Any) -> bool:
    try:
        _Loader("", ValueError).convert(hint, value, "")
    except (_Mismatch, ValueError):
        return False
    return True


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(hint: Any) -> str:
    """What a value of `hint` is, for "must be ...": float, int, str or int, a list of int, a table."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Annotated:
        return _describe(args[0])
    if origin is Literal:
        return f"one of {', '.join(map(str, args))}"
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(arm) for arm in args)
    if hint is type(None):
        return "None"
    if origin in (tuple, list) or hint in (tuple, list):
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            return f"a list of {len(args)} ({', '.join(_describe(a) for a in args)})"
        return f"a list of {_describe(args[0])}" if args and args[0] is not Any else "a list"
    if origin is dict or hint is dict or dataclasses.is_dataclass(hint):
        return "a table"
    return getattr(hint, "__name__", str(hint))
