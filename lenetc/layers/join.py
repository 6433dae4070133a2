"""Joins: add (operands of equal shape, summed) and cat (concatenated along one axis).

A join reads two or more earlier outputs, named in the layer's `inputs`; its rule takes one
LayerInput per operand, each knowing the layer it came from and that layer's YAML line, so that a
mismatch says both shapes and where each one was made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..spec.fields import integer
from .base import (
    Inferred,
    LayerInput,
    LayerKind,
    Param,
    ShapeProblem,
    fmt_shape,
    numel,
    register,
)

_AXES = {3: ("channels", "height", "width"), 1: ("features",)}


def _where(inp: LayerInput) -> str:
    """`bn_b (line 12) gives (16, 8, 8)`: an operand, where it was made, and its shape."""
    line = f" (line {inp.line})" if inp.line else ""
    return f"{inp.source}{line} gives {fmt_shape(inp.shape)}"


def _projection_hint(target: LayerInput, other: LayerInput) -> str | None:
    """For two images: the 1x1 conv2d that brings `other` to `target`'s shape, when one can."""
    if len(target.shape) != 3 or len(other.shape) != 3:
        return None
    (c, h, w), (_, h2, w2) = target.shape, other.shape
    if h2 % h or w2 % w or h2 // h != w2 // w:
        return None
    stride = h2 // h
    # a strided 1x1 convolution keeps ceil(n / s) positions, which is exactly h when h2 = s * h
    keys = f"out_channels: {c}, kernel_size: 1" + (f", stride: {stride}" if stride > 1 else "")
    return f"project {other.source} with {{type: conv2d, {keys}, inputs: [{other.source}]}}"


def _add(a: Mapping[str, Any], inputs: tuple[LayerInput, ...]) -> Inferred:
    first = inputs[0]
    for other in inputs[1:]:
        if other.shape != first.shape:
            hint = _projection_hint(first, other) or _projection_hint(other, first)
            raise ShapeProblem(
                f"add needs operands of equal shape, but {_where(first)} and {_where(other)}",
                hint=(hint + " (a projection shortcut)")
                if hint
                else "make the shapes agree before the add (a 1x1 conv2d or linear projects one)",
                key="inputs",
            )
    return Inferred(
        out_shape=first.shape,
        formula=" + ".join(i.source for i in inputs),
        flops=(len(inputs) - 1) * numel(first.shape),
    )


def _cat(a: Mapping[str, Any], inputs: tuple[LayerInput, ...]) -> Inferred:
    first = inputs[0]
    rank = len(first.shape) + 1  # torch counts the batch axis
    for other in inputs[1:]:
        if len(other.shape) != len(first.shape):
            raise ShapeProblem(
                f"cat needs operands of the same rank, but {_where(first)} and {_where(other)}",
                hint="flatten both, or neither, before the cat",
                key="inputs",
            )
    dim = a["dim"]
    if not -rank <= dim < rank or dim % rank == 0:
        axes = ", ".join(str(d) for d in range(1, rank))
        raise ShapeProblem(
            f"dim {dim} is not a feature axis of its inputs (N, "
            f"{', '.join(map(str, first.shape))})"
            + (" (it is the batch axis)" if -rank <= dim < rank else ""),
            hint=f"dim counts the batch axis as 0, as torch does; choose {axes}"
            + (f" (or {-rank + 1} to -1)" if rank > 2 else " or -1"),
            key="dim",
        )
    axis = dim % rank - 1  # index into a shape without the batch axis
    name = _AXES.get(len(first.shape), ())[axis] if len(first.shape) in _AXES else f"axis {dim}"
    for other in inputs[1:]:
        rest = [d for i, d in enumerate(other.shape) if i != axis]
        if rest != [d for i, d in enumerate(first.shape) if i != axis]:
            raise ShapeProblem(
                f"cat along dim {dim} ({name}) needs every other axis equal, but {_where(first)} "
                f"and {_where(other)}",
                hint="bring the branches to the same size first (padding, stride or pooling)",
                key="inputs",
            )
    total = sum(i.shape[axis] for i in inputs)
    out = tuple(total if i == axis else d for i, d in enumerate(first.shape))
    return Inferred(
        out_shape=out,
        formula=" + ".join(str(i.shape[axis]) for i in inputs) + f" = {total} {name}",
        args={"dim": dim},
    )


register(
    LayerKind(
        type="add",
        prefix="add",
        params=(),
        rule=_add,
        module=False,
        torch="x + y",
        summary="elementwise sum of two or more outputs of equal shape (a residual shortcut)",
        join=True,
    )
)

register(
    LayerKind(
        type="cat",
        prefix="cat",
        params=(
            Param(
                "dim",
                integer(-4, 3, "an axis"),
                1,
                "axis, counting the batch as 0 (as torch does); 1 is the channel axis",
            ),
        ),
        rule=_cat,
        module=False,
        torch="torch.cat",
        summary="concatenation of two or more outputs along one axis (Inception, DenseNet)",
        join=True,
    )
)
