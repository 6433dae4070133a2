"""Targets (walk): the target-neutral reading of a ShapeTrace that every target's layout shares.

Takes the trace; for any run of consecutive layers that a target writes as one statement, gives
the comment that says the shape after it and how its height and width came about:
`(N, 6, 14, 14): (32 - 5 + 1) / 2 = 14`, composed from the rules' trees per axis
(layers/formula.py), never from text. A target (torch.py, c/) brings its own layout. No torch
import.
"""

from __future__ import annotations

from ..check.shapes import TracedNode
from ..layers.formula import compose


def batched(shape: tuple[int, ...]) -> str:
    return "(N, " + ", ".join(str(d) for d in shape) + ")"


def derivation_comment(group: list[TracedNode]) -> str:
    """`(N, 6, 14, 14): (32 - 5 + 1) / 2 = 14`: the shape after the statement, then the arithmetic
    of every layer in it that changed height or width, or of the flatten that made the features."""
    shape = batched(group[-1].out_shape)
    steps = [t.out.axes or t.out.formula for t in group if _explains(t)]
    if not steps:
        return shape
    return f"{shape}: {compose(steps)}"


def _explains(t: TracedNode) -> bool:
    if not t.out.formula:
        return False
    if len(t.in_shape) == 3 and len(t.out_shape) == 3:
        return t.out_shape[1:] != t.in_shape[1:]
    return len(t.in_shape) == 3 and len(t.out_shape) == 1  # flatten: 16 x 5 x 5 = 400
