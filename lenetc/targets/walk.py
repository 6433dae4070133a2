"""Targets (walk): the target-neutral reading of a ShapeTrace that every target's layout shares.

Takes the trace; gives each layer's view (values.py) and, for any run of consecutive layers that a
target writes as one statement, the comment that says the shape after it and how its height and
width came about: `(N, 6, 14, 14): (32 - 5 + 1) / 2 = 14`. A target (torch.py, later c.py) brings
its own layout: which layers share a statement, line length, wrapping. No torch import.
"""

from __future__ import annotations

import re

from ..check.shapes import ShapeTrace, TracedNode
from .values import LayerView, view


def layer_views(trace: ShapeTrace) -> list[LayerView]:
    """One view per traced node, in trace order."""
    return [view(t.node.name, t.out) for t in trace.nodes]


def batched(shape: tuple[int, ...]) -> str:
    return "(N, " + ", ".join(str(d) for d in shape) + ")"


def derivation_comment(group: list[TracedNode]) -> str:
    """`(N, 6, 14, 14): (32 - 5 + 1) / 2 = 14`: the shape after the statement, then the arithmetic
    of every layer in it that changed height or width, or of the flatten that made the features."""
    shape = batched(group[-1].out_shape)
    steps = [t.out.formula for t in group if _explains(t)]
    if not steps:
        return shape
    return f"{shape}: {compose(steps)}"


def _explains(t: TracedNode) -> bool:
    if not t.out.formula:
        return False
    if len(t.in_shape) == 3 and len(t.out_shape) == 3:
        return t.out_shape[1:] != t.in_shape[1:]
    return len(t.in_shape) == 3 and len(t.out_shape) == 1  # flatten: 16 x 5 x 5 = 400


_ARITHMETIC = re.compile(r"[0-9()+\-*/ ]*(?:(?:ceil|floor)\([0-9()+\-*/ ]*)*= \d+\Z")


def compose(steps: list[str]) -> str:
    """Chain the formulas of consecutive layers, per axis: `32 - 5 + 1 = 28` then `28 / 2 = 14`
    reads `(32 - 5 + 1) / 2 = 14`. Formulas that are not plain arithmetic join with `, then`."""
    per_axis = [_axes(s) for s in steps]
    if all(a is not None for a in per_axis) and any(len(a) == 2 for a in per_axis):
        h = _chain([a[0] for a in per_axis])
        w = _chain([a[-1] for a in per_axis])
        return f"h: {h}; w: {w}"
    return _chain(steps)


def _axes(step: str) -> tuple[str, ...] | None:
    m = re.fullmatch(r"h: (.*); w: (.*)", step)
    if m:
        return (m.group(1), m.group(2))
    return (step,) if _ARITHMETIC.match(step) else None


def _chain(steps: list[str]) -> str:
    text = steps[0]
    for step in steps[1:]:
        expr, _, value = text.rpartition(" = ")
        first = re.search(r"\d+", step)
        nests = _ARITHMETIC.match(text) and _ARITHMETIC.match(step) and first
        if nests and first.group() == value and len(text) + len(step) <= 60:
            inner = expr if re.fullmatch(r"\d+", expr) else f"({expr})"
            text = step[: first.start()] + inner + step[first.end() :]
        else:
            text = f"{text}, then {step}"
    return text
