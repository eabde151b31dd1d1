"""Typed method settings: each method's hyper-parameters as a frozen dataclass.

A method declares its settings beside its class (in a torch-free `<method>_settings`
module, so that the registry and the plan never import torch): every field's type
says what the config may give (`Literal` for a few allowed values, `X | None` where
null means "off", a nested `Settings` dataclass for structured entries), its default
is the method's default, and `setting(default, Range(...))` adds the interval a number
must lie in. `from_config` checks a config's overrides against the dataclass when the
plan is built; `__post_init__` checks every construction, so a method never re-checks
its settings. What is recorded (a run's identity, metrics.json, DVC's params) is
`record()`, the plain dict of the fields.

YAML's types: an int may stand for a float (kept as written, so that what is recorded
is what the config says), never for a bool, and a bool is never a number.
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Self, Union, get_args, get_origin, get_type_hints

from tlrepro.errors import TlreproError


class SettingError(TlreproError, ValueError):
    """A method setting the config names does not exist, has the wrong type or value."""


@dataclass(frozen=True)
class Range:
    """The interval a numeric setting must lie in; `low`/`high` are excluded when open."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        """How an error states the range: `> 0`, `>= 1` or `in (0, 1]`."""
        if self.high == math.inf:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return (
            f"in {'(' if self.low_open else '['}{self.low:g}, "
            f"{self.high:g}{')' if self.high_open else ']'}"
        )


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
PROBABILITY = Range(0, 1)


def setting(default: Any = dataclasses.MISSING, within: Range | None = None) -> Any:
    """A field with its default and the `Range` a number must be in (None is always
    allowed where the type is `X | None`)."""
    return dataclasses.field(default=default, metadata={"range": within})


def _kind(hint: Any) -> str:
    """How an error names a type: `a float`, `an int or null`, `one of a, b`."""
    origin = get_origin(hint)
    if origin is Literal:
        return f"one of {', '.join(map(str, get_args(hint)))}"
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _kind(a) for a in get_args(hint))
    if origin is list:
        return f"a list of {getattr(get_args(hint)[0], '__name__', 'items')} entries"
    name = getattr(hint, "__name__", str(hint))
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _conforms(value: Any, hint: Any) -> bool:
    """Whether `value` has the type `hint` names (YAML's ints standing for floats)."""
    origin = get_origin(hint)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in get_args(hint))
    if origin in (Union, types.UnionType):
        return any(_conforms(value, a) for a in get_args(hint))
    if origin is list:
        return isinstance(value, list) and all(_conforms(v, get_args(hint)[0]) for v in value)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _nested(value: Any, hint: Any, key: str) -> Any:
    """Mappings in the config made into the nested `Settings` dataclasses the type names."""
    origin = get_origin(hint)
    if origin is list and isinstance(value, list):
        return [_nested(v, get_args(hint)[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(hint, type) and issubclass(hint, Settings) and isinstance(value, Mapping):
        try:
            return hint.from_config(value)
        except SettingError as error:
            raise SettingError(f"setting {key!r}: {error.args[0]}") from None
    return value


@dataclass(frozen=True)
class Settings:
    """A method's settings; this base itself is the settings of a method that has none."""

    @classmethod
    def from_config(cls, values: Mapping[str, Any]) -> Self:
        """The defaults updated with the config's `values`; an unknown or missing key, a
        wrong type or a value out of range is a `SettingError` naming the key."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise SettingError(
                f"no setting {unknown[0]!r} (the settings: {', '.join(sorted(names)) or 'none'})"
            )
        required = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = [name for name in required if name not in values]
        if missing:
            raise SettingError(f"setting {missing[0]!r} is required (give {', '.join(required)})")
        hints = get_type_hints(cls)
        return cls(**{key: _nested(value, hints[key], key) for key, value in values.items()})

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        for field in dataclasses.fields(self):
            value, hint = getattr(self, field.name), hints[field.name]
            if not _conforms(value, hint):
                if get_origin(hint) is Literal:
                    raise SettingError(f"setting {field.name!r} is {value!r}; choose {_kind(hint)}")
                raise SettingError(f"setting {field.name!r} must be {_kind(hint)}, got {value!r}")
            within = field.metadata.get("range")
            if within is not None and value is not None and value not in within:
                raise SettingError(f"setting {field.name!r} is {value!r}; it must be {within}")

    def record(self) -> dict[str, Any]:
        """The plain dict that runs record (identity, metrics.json, DVC params)."""
        return dataclasses.asdict(self)
