"""Typed reading of YAML values, shared by the spec, its layers and its sections.

Each value parser takes a raw YAML value and returns the typed value, or raises FieldError saying
what was expected and what was found. A Section reads one YAML mapping: it rejects unknown keys with
the nearest known one, applies defaults, and records every problem (with its line) instead of
stopping at the first, so one run of `lenetc check` reports all of them.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import Location, Problem
from .yamlsafe import YList, YMap, line_of

MAX_INT = 1 << 20  # no size in a small network is a million; larger is a typo or an attack


class FieldError(ValueError):
    """A value has the wrong type or range; message says what was expected, found what."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


Parser = Callable[[Any], Any]
REQUIRED: Any = object()


def describe(value: Any) -> str:
    """How a found value reads in an error: YAML spellings, not Python reprs."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, YMap):
        return "a mapping"
    if isinstance(value, list):
        return "a list " + _short(value)
    if isinstance(value, str):
        return f"'{value}'" if len(value) < 40 else f"'{value[:37]}...'"
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if value != value else (".inf" if value > 0 else "-.inf")
    return repr(value)


def _short(value: list) -> str:
    text = (
        "[" + ", ".join(describe(v) for v in value[:4]) + (", ..." if len(value) > 4 else "") + "]"
    )
    return text


def _bool_hint(value: Any) -> str | None:
    if isinstance(value, bool):
        return "YAML reads yes/no/on/off/true/false as booleans; write a number"
    return None


def _exponent_hint(value: Any) -> str | None:
    """YAML 1.1 (PyYAML) reads 1e-5 as text: it wants a dot and a signed exponent, 1.0e-5."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return None
        return "YAML reads a number like 1e-5 as text; write it with a dot and a sign: 1.0e-5"
    return None


def integer(lo: int = 1, hi: int = MAX_INT, what: str = "an integer") -> Parser:
    def parse(value: Any) -> int:
        if isinstance(value, float) and value.is_integer() and not isinstance(value, bool):
            raise FieldError(f"expected {what}, found {value!r}", hint=f"write {int(value)}")
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(f"expected {what}, found {describe(value)}", hint=_bool_hint(value))
        if value < lo or value > hi:
            raise FieldError(f"expected {what} from {lo} to {hi}, found {value}")
        return value

    return parse


def number(
    lo: float = -math.inf, hi: float = math.inf, *, lo_open: bool = False, what: str = "a number"
) -> Parser:
    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FieldError(
                f"expected {what}, found {describe(value)}",
                hint=_bool_hint(value) or _exponent_hint(value),
            )
        value = float(value)
        if not math.isfinite(value):
            raise FieldError(
                f"expected a finite number, found {describe(value)}",
                hint="NaN and infinity are refused everywhere in a spec",
            )
        too_low = value <= lo if lo_open else value < lo
        if too_low or value > hi:
            if hi == math.inf:
                rng = f"more than {lo:g}" if lo_open else f"at least {lo:g}"
            else:
                rng = (
                    f"more than {lo:g} and at most {hi:g}" if lo_open else f"from {lo:g} to {hi:g}"
                )
            raise FieldError(f"expected {what} {rng}, found {value:g}")
        return value

    return parse


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise FieldError(f"expected true or false, found {describe(value)}")
    return value


def choice(*options: str) -> Parser:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            near = nearest(value, options) if isinstance(value, str) else None
            raise FieldError(
                f"expected one of {', '.join(options)}, found {describe(value)}",
                hint=f"did you mean '{near}'?" if near else None,
            )
        return value

    return parse


def text(max_len: int = 4096) -> Parser:
    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise FieldError(f"expected text, found {describe(value)}")
        if len(value) > max_len:
            raise FieldError(f"expected at most {max_len} characters, found {len(value)}")
        return value

    return parse


def pair(item: Parser, what: str = "a positive integer") -> Parser:
    """An int or an [h, w] pair of them, returned as an (h, w) tuple."""

    def parse(value: Any) -> tuple[int, int]:
        if isinstance(value, list):
            if len(value) != 2:
                raise FieldError(f"expected {what} or an [h, w] pair, found a list of {len(value)}")
            try:
                return (item(value[0]), item(value[1]))
            except FieldError as exc:
                raise FieldError(f"in the [h, w] pair: {exc}", exc.hint) from None
        try:
            one = item(value)
        except FieldError as exc:
            raise FieldError(f"{exc} (or an [h, w] pair)", exc.hint) from None
        return (one, one)

    return parse


def int_list(item: Parser, min_len: int = 1, max_len: int = 64) -> Parser:
    def parse(value: Any) -> tuple[int, ...]:
        if not isinstance(value, list) or not (min_len <= len(value) <= max_len):
            raise FieldError(
                f"expected a list of {min_len} to {max_len} values, found {describe(value)}"
            )
        return tuple(item(v) for v in value)

    return parse


def nearest(word: str, options: Iterable[str]) -> str | None:
    """The closest known spelling: kernal_size -> kernel_size, maxpool2d -> max_pool2d."""
    options = list(options)
    squashed = {o.replace("_", ""): o for o in options}
    if word.replace("_", "").lower() in squashed:
        return squashed[word.replace("_", "").lower()]
    found = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return found[0] if found else None


@dataclass
class Reporter:
    """Collects the problems of one spec file."""

    file: str
    problems: list[Problem] = field(default_factory=list)

    def add(
        self, message: str, line: int, layer: str | None = None, hint: str | None = None
    ) -> None:
        self.problems.append(Problem(message, Location(self.file, line), layer=layer, hint=hint))


class Section:
    """Reads the keys of one YAML mapping against a schema, recording problems in a Reporter."""

    def __init__(
        self,
        data: Any,
        known: Iterable[str],
        report: Reporter,
        *,
        where: str,
        line: int,
        layer: str | None = None,
    ) -> None:
        self.report = report
        self.where = where  # "train.optimizer", used in messages outside layers
        self.layer = layer
        self.ok = True
        if data is None:
            data = YMap()
            data.line, data.key_lines = line, {}
        if not isinstance(data, YMap):
            self.fail(f"{where} must be a mapping, found {describe(data)}", line)
            data = YMap()
            data.line, data.key_lines = line, {}
        self.data = data
        # "train.dataset.name" outside layers; inside a layer the label already says where
        self.prefix = "" if layer or where == "the spec" else where + "."
        self.suggested: set[str] = set()  # keys offered for a misspelt one: not also "missing"
        known = list(known)
        for key in data:
            if key not in known:
                near = nearest(key, known)
                if near:
                    self.suggested.add(near)
                self.fail(
                    f"unknown key '{key}'" + ("" if layer else f" in {where}"),
                    line_of(data, key),
                    hint=f"did you mean '{near}'?" if near else f"known keys: {', '.join(known)}",
                )

    def fail(self, message: str, line: int, hint: str | None = None) -> None:
        self.ok = False
        self.report.add(message, line, layer=self.layer, hint=hint)

    def line(self, key: str | None = None) -> int:
        return line_of(self.data, key)

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, parse: Parser, default: Any = REQUIRED) -> Any:
        """The parsed value of key, its default, or None after recording a problem."""
        if key not in self.data:
            if default is REQUIRED:
                if key not in self.suggested:
                    where = "" if self.layer else f" in {self.where}"
                    self.fail(f"missing required key '{key}'{where}", self.line())
                else:
                    self.ok = False
                return None
            return default
        try:
            return parse(self.data[key])
        except FieldError as exc:
            self.fail(f"{self.prefix}{key}: {exc}", self.line(key), hint=exc.hint)
            return None

    def raw(self, key: str) -> Any:
        return self.data.get(key)


def as_list(value: Any) -> YList | None:
    return value if isinstance(value, YList) else None
