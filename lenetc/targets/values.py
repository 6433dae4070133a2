"""Targets (values): a layer's typed arguments -> Python literals, for the torch target.

The registry hands over typed values (ints, floats, bools, strings, (h, w) pairs, a `Product`),
never source text; this module writes each one as the Python literal a person would (a square
pair as one number, strings in double quotes as ruff format writes them, `16 * 5 * 5` without
factors of 1) and refuses any other type, so no value can carry code. Identifiers were validated
in spec/load.py and are checked again here. The torch target parses the whole file with `ast` at
the end. No torch import.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..check.shapes import ShapeTrace
from ..layers import Inferred
from ..layers.base import Product

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}\Z")


@dataclass(frozen=True)
class LayerView:
    """What a fragment sees of one layer: its name and its arguments as canonical literals."""

    name: str
    args: dict[str, str]
    options: tuple[tuple[str, str], ...]


def view(name: str, out: Inferred) -> LayerView:
    return LayerView(
        identifier(name),
        {k: python(v) for k, v in out.args.items()},
        tuple((identifier(k), python(v)) for k, v in out.options),
    )


def layer_views(trace: ShapeTrace) -> list[LayerView]:
    """One view per traced node, in trace order."""
    return [view(t.node.name, t.out) for t in trace.nodes]


def identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"refusing to render {name!r}: not a validated identifier")
    return name


def python(value: object) -> str:
    """A typed argument as a Python literal: (5, 5) -> 5, (2, 3) -> (2, 3), 'same' -> "same",
    Product((64, 1, 1)) -> 64, Product((16, 5, 5)) -> 16 * 5 * 5."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Product):
        factors = [f for f in value.factors if f != 1] or [1]
        return " * ".join(str(f) for f in factors)
    if isinstance(value, tuple) and value and all(type(v) is int for v in value):
        if len(value) == 2 and value[0] == value[1]:
            return str(value[0])
        return "(" + ", ".join(str(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    raise ValueError(f"refusing to render {value!r}: not a literal a layer argument can take")


def _string(value: str) -> str:
    """A string literal as ruff format writes it: double quotes unless that needs more escapes."""
    plain = repr(value)
    if '"' in value or "'" in value:
        return plain
    return '"' + plain[1:-1] + '"'
