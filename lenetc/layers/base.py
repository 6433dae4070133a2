"""The layer registry: one LayerKind per spec `type`, holding its keys, its shape rule and its doc.

A kind's shape rule takes the parsed keys and the input shape (batch omitted) and returns an
Inferred: the output shape, the arithmetic that produced it (as text for `check`, and for a window
as one tree per axis, formula.py), the parameter count, the FLOPs and the constructor / call
arguments as typed values (ints, floats, bools, strings, pairs, a `Product`), which each target
formats its own way in templates/<target>/layers/<type>.j2. Adding a layer kind means one
register() call, one fragment and one test row; nothing else in lenetc branches on a kind. No
torch import here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..spec.fields import REQUIRED, Parser
from .formula import Axis

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Product:
    """A size as the product it came from: a linear layer's features after a flatten, 16 * 5 * 5
    (reads better than 400 in a hand-written LeNet)."""

    factors: tuple[int, ...]

    @property
    def value(self) -> int:
        return numel(self.factors)


# What a rule hands a target as an argument: typed, never source text.
Arg = int | float | bool | str | tuple[int, int] | Product


class ShapeProblem(Exception):
    """A layer cannot take its input: message is expected-vs-found, hint is a way out."""

    def __init__(self, message: str, hint: str | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint
        self.key = key  # the spec key at fault, to point at its YAML line


@dataclass(frozen=True)
class Param:
    name: str
    parse: Parser
    default: Any = REQUIRED
    doc: str = ""


@dataclass(frozen=True)
class LayerInput:
    """What a layer receives: its shape, and the factors when a flatten made it (16, 5, 5)."""

    shape: Shape
    factors: Shape | None = None
    source: str = ""  # the layer that produced it ("input" for the network's input)
    line: int = 0  # that layer's YAML line, for messages about joins


@dataclass(frozen=True)
class Inferred:
    out_shape: Shape
    formula: str = ""
    params: int = 0
    flops: int = 0
    # For a window (conv2d, pooling): how each axis came about, one tree per axis (one when
    # height and width read alike); empty when `formula` is prose.
    axes: tuple[Axis, ...] = ()
    # Typed values for the template fragment: every argument by name, and the keyword arguments
    # that differ from torch's defaults (the ones a person would write out).
    args: Mapping[str, Arg] = field(default_factory=dict)
    options: tuple[tuple[str, Arg], ...] = ()
    factors: Shape | None = None  # set by flatten, read by linear for `16 * 5 * 5`
    # The float tensors its state_dict holds, in order, by name, in torch's shape (a target that
    # stores weights sizes its arrays from these, without torch).
    tensors: tuple[tuple[str, Shape], ...] = ()


# (parsed keys, input) -> Inferred; a join kind's rule takes a tuple of LayerInputs instead.
Rule = Callable[[Mapping[str, Any], Any], Inferred]


@dataclass(frozen=True)
class LayerKind:
    type: str
    prefix: str  # auto names: conv -> conv1, conv2
    params: tuple[Param, ...]
    rule: Rule
    module: bool  # True: an nn.Module attribute (has parameters or buffers); False: functional
    torch: str  # what it renders to, for docs: "nn.Conv2d", "F.max_pool2d"
    summary: str
    # An exporter may fold this layer into the one before it (ONNX folds batch norm into the
    # preceding conv): that layer's parameters in an artifact may differ from weights.pt.
    folds_into_input: bool = False
    # A join (add, cat) reads two or more inputs: its rule takes a tuple of LayerInputs, one per
    # name in the layer's `inputs`. Every other kind reads exactly one.
    join: bool = False

    @property
    def arity(self) -> tuple[int, int]:
        """How many inputs the kind reads: (at least, at most)."""
        return (2, MAX_JOIN) if self.join else (1, 1)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)


MAX_JOIN = 64  # operands of one add or cat
REGISTRY: dict[str, LayerKind] = {}


def register(kind: LayerKind) -> LayerKind:
    if kind.type in REGISTRY:
        raise ValueError(f"layer kind '{kind.type}' is registered twice")
    REGISTRY[kind.type] = kind
    return kind


# ---- helpers shared by the rules -------------------------------------------------------------


def options(params: Mapping[str, Any], defaults: Mapping[str, Any]) -> tuple[tuple[str, Arg], ...]:
    """The keyword arguments whose value differs from torch's default, in the given order."""
    out = []
    for key, default in defaults.items():
        value = params[key]
        if _norm(value) != _norm(default):
            out.append((key, value))
    return tuple(out)


def _norm(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1]:
        return value[0]
    return value


def numel(shape: Shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def fmt_pair(value: Any) -> str:
    """How an (h, w) pair reads in a message: 2 when square, [2, 3] otherwise (as in YAML)."""
    if isinstance(value, tuple) and len(value) == 2:
        return str(value[0]) if value[0] == value[1] else f"[{value[0]}, {value[1]}]"
    return str(value)


def fmt_shape(shape: Shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def need_rank(inp: LayerInput, rank: int, what: str, hint: str) -> None:
    if len(inp.shape) != rank:
        expected = "(channels, height, width)" if rank == 3 else "(features,)"
        raise ShapeProblem(
            f"{what} takes a {rank}-D input {expected}, but its input is {fmt_shape(inp.shape)}",
            hint=hint,
        )
