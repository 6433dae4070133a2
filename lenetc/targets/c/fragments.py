"""Targets (c, fragments): a kind's C fragment (templates/c/layers/<type>.j2) -> `Fragment`, its
settings read once, typed and validated. No torch import.

A fragment is a Jinja module; what it exports (top-level `set`s and macros) is its contract with
the C target. A setting this module does not know, or one of the wrong type, is an error naming
the template and the nearest known setting: a misspelled `{% set inplace = true %}` would
otherwise be ignored without a word.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jinja2

from ...errors import RuntimeFailure
from ..templates import fragment

TARGET = "c"


@dataclass(frozen=True)
class Fragment:
    """What one kind's C fragment declares."""

    kind: str
    template: str  # "c/layers/relu.j2", for messages
    kernel: Any = None  # macro kernel(k): the kind's static function, once per model.c
    call: Any = None  # macro call(l, a): one layer's call of it, `a` its inputs then its output
    alias: bool = False  # its output is its input's memory (flatten, dropout)
    in_place: bool = False  # may write its input's buffer when it is that tensor's last reader
    needs_math: bool = False  # model.c includes <math.h>
    needs_float_h: bool = False  # model.c includes <float.h>
    windowed: bool = False  # its kernel takes the types Chw and Window
    # how each weight is permuted from torch's axis order: state_dict name -> axes
    layout: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    pad_to_lanes: frozenset[str] = frozenset()  # weights whose last axis is padded to the lanes
    scratch: str | None = None  # a view value (l.v) naming the floats of scratch it needs

    @property
    def computes(self) -> bool:
        return not self.alias


_FLAGS = ("alias", "in_place", "needs_math", "needs_float_h", "windowed")
_MACROS = ("kernel", "call")
KNOWN = (*_MACROS, *_FLAGS, "layout", "pad_to_lanes", "scratch")


class ContractProblem(RuntimeFailure):
    """A C fragment's settings break the contract (a packaging bug: exit 1, naming the file)."""

    def __init__(self, template: str, message: str) -> None:
        self.template = template
        super().__init__(f"templates/{template}: {message}")


@cache
def contract(kind: str) -> Fragment:
    """The fragment of `kind`, read and checked once per process."""
    template = f"{TARGET}/layers/{kind}.j2"
    module = fragment(TARGET, kind)
    exported = {k: v for k, v in vars(module).items() if not k.startswith("_")}
    values: dict[str, Any] = {}
    for name, value in exported.items():
        if name not in KNOWN:
            near = difflib.get_close_matches(name, KNOWN, n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise ContractProblem(
                template,
                f"unknown setting '{name}'{hint}; a C fragment may set {', '.join(KNOWN)}",
            )
        values[name] = _checked(template, name, value)
    macros = [name for name in _MACROS if name in values]
    if values.get("alias") and macros:
        raise ContractProblem(
            template, f"an alias shares its input's memory: it has no {' or '.join(macros)}"
        )
    if not values.get("alias") and len(macros) < 2:
        missing = " and ".join(f"{m}()" for m in _MACROS if m not in values)
        raise ContractProblem(template, f"no macro {missing}, and not an alias")
    layout = values.get("layout", {})
    unknown = values.get("pad_to_lanes", frozenset()) - set(layout)
    if unknown:
        raise ContractProblem(template, f"pad_to_lanes names {sorted(unknown)}, not in layout")
    return Fragment(kind, template, **values)


def _checked(template: str, name: str, value: Any) -> Any:
    def wrong(expected: str) -> ContractProblem:
        return ContractProblem(template, f"'{name}' must be {expected}, found {value!r}")

    if name in _MACROS:
        if not isinstance(value, jinja2.runtime.Macro):
            raise wrong("a macro")
        return value
    if name in _FLAGS:
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if name == "layout":
        if not isinstance(value, dict):
            raise wrong('a mapping {"weight": [axes]}')
        out = {}
        for key, axes in value.items():
            if not (isinstance(key, str) and isinstance(axes, (list, tuple))):
                raise wrong('a mapping {"weight": [axes]}')
            if sorted(axes) != list(range(len(axes))):
                raise wrong(f"a permutation per weight ({key}: {axes})")
            out[key] = tuple(axes)
        return out
    if name == "pad_to_lanes":
        if not (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)):
            raise wrong("a list of weight names")
        return frozenset(value)
    if name == "scratch":
        if not isinstance(value, str):
            raise wrong("the name of a view value")
        return value
    raise AssertionError(name)  # KNOWN and this function list the same names
