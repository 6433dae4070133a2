"""max_pool2d, avg_pool2d, adaptive_avg_pool2d: functional pooling, with torch's size rule.

out = floor_or_ceil((in + 2*padding - dilation*(kernel - 1) - 1) / stride) + 1; with ceil_mode the
last window must start inside the input or the left padding, else torch drops it (out - 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..spec.fields import boolean, integer, pair
from .base import (
    Inferred,
    LayerInput,
    LayerKind,
    Param,
    ShapeProblem,
    fmt_pair,
    need_rank,
    numel,
    options,
    register,
)
from .conv import window_terms
from .formula import Axis, axes_text, op

_size = pair(integer(1, 4096, "a positive integer"))
_pad = pair(integer(0, 4096, "a non-negative integer"), "a non-negative integer")


def pool_axis(n: int, k: int, s: int, p: int, d: int, ceil: bool) -> tuple[int, Axis]:
    """One axis of a pooling window: (output size, its derivation)."""
    num_, terms = window_terms(n, k, p, d)
    if ceil:
        out = -(-num_ // s) + 1
        tree = op("+", op("ceil", op("/", terms, s)), 1)
        if (out - 1) * s >= n + p:  # torch: the last window must start inside input + left pad
            note = f", less the window that would start past the input = {out - 1}"
            return out - 1, Axis(tree, out, note)
        if k == s and p == 0 and d == 1:
            return out, Axis(op("ceil", op("/", n, k)), out)
        return out, Axis(tree, out)
    out = num_ // s + 1
    if k == s and p == 0 and d == 1:  # the classic non-overlapping pool: a plain division
        plain = op("/", n, k)
        return out, Axis(plain if n % k == 0 else op("floor", plain), out)
    return out, Axis(op("+", op("/" if num_ % s == 0 else "//", terms, s), 1), out)


def _window(
    a: Mapping[str, Any], inp: LayerInput, what: str, dilation: tuple[int, int]
) -> Inferred:
    need_rank(inp, 3, what, "pooling works on (channels, height, width), before any flatten")
    c, h, w = inp.shape
    (kh, kw) = a["kernel_size"]
    (sh, sw) = a["stride"] if a["stride"] is not None else a["kernel_size"]
    (ph, pw), (dh, dw) = a["padding"], dilation
    if ph > kh // 2 or pw > kw // 2:
        raise ShapeProblem(
            f"padding {fmt_pair(a['padding'])} is more than half of kernel_size "
            f"{fmt_pair((kh, kw))}",
            hint=f"torch allows padding up to kernel_size // 2 = {fmt_pair((kh // 2, kw // 2))}",
            key="padding",
        )
    (oh, th), (ow, tw) = (
        pool_axis(h, kh, sh, ph, dh, a["ceil_mode"]),
        pool_axis(w, kw, sw, pw, dw, a["ceil_mode"]),
    )
    if oh < 1 or ow < 1:
        raise ShapeProblem(
            f"the {kh} x {kw} window does not fit the {h} x {w} input: the output would be "
            f"{oh} x {ow}",
            hint="use a smaller kernel_size, add padding, or remove an earlier pooling layer",
            key="kernel_size",
        )
    square = h == w and (kh, sh, ph, dh) == (kw, sw, pw, dw)
    out = (c, oh, ow)
    resolved = dict(a, stride=(sh, sw))
    axes = (th,) if square else (th, tw)
    return Inferred(
        out_shape=out,
        formula=axes_text(axes),
        axes=axes,
        flops=numel(out) * kh * kw,
        args={"kernel_size": (kh, kw)},
        options=options(resolved, {"stride": (kh, kw), "padding": 0})
        + (options({"dilation": dilation}, {"dilation": 1}) if what == "max_pool2d" else ())
        + options(a, {"ceil_mode": False})
        + (options(a, {"count_include_pad": True}) if what == "avg_pool2d" else ()),
    )


def _max_pool2d(a: Mapping[str, Any], inp: LayerInput) -> Inferred:
    return _window(a, inp, "max_pool2d", a["dilation"])


def _avg_pool2d(a: Mapping[str, Any], inp: LayerInput) -> Inferred:
    return _window(a, inp, "avg_pool2d", (1, 1))


def _adaptive_avg_pool2d(a: Mapping[str, Any], inp: LayerInput) -> Inferred:
    need_rank(inp, 3, "adaptive_avg_pool2d", "pooling works on (channels, height, width)")
    c, h, w = inp.shape
    oh, ow = a["output_size"]
    return Inferred(
        out_shape=(c, oh, ow),
        formula=f"{h} x {w} -> {oh} x {ow} (adaptive)",
        flops=numel(inp.shape),
        args={"output_size": (oh, ow)},
    )


_WINDOW = (
    Param("kernel_size", _size, doc="int or [h, w]"),
    Param("stride", _size, None, "int or [h, w]; defaults to kernel_size"),
    Param("padding", _pad, (0, 0), "int or [h, w], at most kernel_size // 2"),
)

register(
    LayerKind(
        type="max_pool2d",
        prefix="pool",
        params=_WINDOW
        + (
            Param("dilation", _size, (1, 1), "int or [h, w]"),
            Param("ceil_mode", boolean, False, "round the output size up, as torch does"),
        ),
        rule=_max_pool2d,
        module=False,
        torch="F.max_pool2d",
        summary="max pooling",
    )
)

register(
    LayerKind(
        type="avg_pool2d",
        prefix="avgpool",
        params=_WINDOW
        + (
            Param("ceil_mode", boolean, False, "round the output size up, as torch does"),
            Param("count_include_pad", boolean, True, "count padded zeros in the average"),
        ),
        rule=_avg_pool2d,
        module=False,
        torch="F.avg_pool2d",
        summary="average pooling",
    )
)

register(
    LayerKind(
        type="adaptive_avg_pool2d",
        prefix="gap",
        params=(Param("output_size", _size, doc="int or [h, w]"),),
        rule=_adaptive_avg_pool2d,
        module=False,
        torch="F.adaptive_avg_pool2d",
        summary="average pooling to a fixed output size",
    )
)
