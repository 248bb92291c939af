"""Settings read from TOML (the sweep config, board profiles) checked against their dataclass: the field
types are the schema, and ``Annotated[..., Limits(...)]`` adds the allowed range, so every key is checked
in one place and a new field is checked without writing anything."""

from __future__ import annotations

import json
import math
import types
from dataclasses import dataclass, fields
from typing import Annotated, Any, get_args, get_origin, get_type_hints


@dataclass(frozen=True)
class Limits:
    """The allowed values of a config field (of each element, for a list), written next to its type so
    the config check is derived from the dataclass: NaN/inf never pass, ``above`` is exclusive."""

    at_least: float | None = None
    above: float | None = None
    non_empty: bool = False
    one_of: tuple[str, ...] = ()   # the names a string (or each string of a list) may take

    def allows(self, v: float) -> bool:
        return (self.at_least is None or v >= self.at_least) and (self.above is None or v > self.above)

    def names(self, v: str) -> bool:
        return not self.one_of or v in self.one_of

    def describe(self) -> str:
        return (f" >= {self.at_least:g}" if self.at_least is not None else "") + \
               (f" > {self.above:g}" if self.above is not None else "")


COUNT, NON_NEGATIVE, POSITIVE = Limits(at_least=1), Limits(at_least=0), Limits(above=0)

_NOUNS = {int: ("a whole number", "whole numbers"), float: ("a number", "numbers"), str: ("a string", "strings")}


def _scalar_ok(value: Any, typ: type) -> bool:
    """TOML's own types: a bool is not a number, an int is a fine float, NaN/inf are no numbers here."""
    if isinstance(value, bool):
        return False
    if typ is float:
        return isinstance(value, int | float) and math.isfinite(value)
    return isinstance(value, typ)


def check_fields(obj: Any, error: type[Exception] = ValueError) -> None:
    """Every field of the dataclass ``obj`` against its declared type and ``Limits``."""
    hints = get_type_hints(type(obj), include_extras=True)
    for f in fields(obj):
        _check_field(f.name, hints[f.name], getattr(obj, f.name), error)


def _check_field(name: str, hint: Any, value: Any, error: type[Exception]) -> None:
    """One value against its declared type (``int``, ``float``, ``str``, ``X | None``, ``tuple[X, ...]``,
    ``list[X]``) and its ``Limits``."""
    limits = Limits()
    if get_origin(hint) is Annotated:
        hint, limits = get_args(hint)[0], get_args(hint)[1]
    if get_origin(hint) is types.UnionType:  # X | None: TOML has no null, so None is only the default
        if value is None:
            return
        hint = next(a for a in get_args(hint) if a is not type(None))
    is_list = get_origin(hint) in (tuple, list)
    typ = get_args(hint)[0] if is_list else hint
    items = value if is_list else (value,)
    ok = (not is_list or isinstance(value, tuple | list)) and (items or not limits.non_empty) \
        and all(_scalar_ok(v, typ) and (typ is str or limits.allows(v)) for v in items)
    if ok and typ is str and not all(limits.names(v) for v in items):
        raise error(f"{name} = {toml_repr(value)}: unknown {name}; choose from {list(limits.one_of)}")
    if not ok:
        want = _NOUNS[typ][is_list] + limits.describe()
        if is_list:
            want = f"a list of {want}" + (" (not empty)" if limits.non_empty else "")
        raise error(f"{name} = {toml_repr(value)}: expected {want}")


def toml_repr(value: Any) -> str:
    """A value as the user wrote it in TOML (lists, not tuples; strings quoted)."""
    return json.dumps(list(value) if isinstance(value, tuple) else value, default=str)
