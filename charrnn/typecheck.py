"""Field types of the configs, checked at run time: a checkpoint's config
comes from a file, and a file can say anything (a float for a layer
count, a string for a learning rate, NaN for a weight decay)."""

from __future__ import annotations

import math
import typing
from dataclasses import fields
from functools import cache

from .errors import CharRNNError


@cache
def _allowed(cls: type) -> dict[str, tuple[type, ...]]:
    """Each field's allowed types: `int | None` -> (int, NoneType)."""
    hints = typing.get_type_hints(cls)
    return {f.name: typing.get_args(hints[f.name]) or (hints[f.name],) for f in fields(cls)}


def finite_number(value: object) -> bool:
    """An int or a finite float, not a bool (JSON writes 1.0 as 1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fits(value: object, type_: type) -> bool:
    if type_ is float:
        return finite_number(value)
    if type_ is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, type_)


def check_types(obj: object) -> None:
    """Refuse, in one line, a dataclass field that does not hold its
    annotated type (int, float, str, bool, or one of them | None). Floats
    must be finite."""
    for name, allowed in _allowed(type(obj)).items():
        value = getattr(obj, name)
        if not any(_fits(value, t) for t in allowed):
            wanted = " or ".join("none" if t is type(None) else f"a finite {t.__name__}" if t is float else
                                 f"an {t.__name__}" if t is int else f"a {t.__name__}" for t in allowed)  # fmt: skip
            raise CharRNNError(f"{name} must be {wanted}, not {value!r:.40}")
