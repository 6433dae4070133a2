"""conv2d: nn.Conv2d, with torch's output-size rule per axis.

out = floor((in + 2*padding - dilation*(kernel - 1) - 1) / stride) + 1
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..spec.fields import FieldError, boolean, integer, pair
from .base import (
    Inferred,
    LayerInput,
    LayerKind,
    Param,
    ShapeProblem,
    fmt_pair,
    fmt_shape,
    need_rank,
    numel,
    options,
    register,
)
from .formula import Axis, Expr, axes_text, num, op

_size = pair(integer(1, 4096, "a positive integer"))
_stride = pair(integer(1, 4096, "a positive integer"))
_pad_int = pair(integer(0, 4096, "a non-negative integer"), "a non-negative integer")


def padding(value: Any) -> tuple[int, int] | str:
    """An int, an [h, w] pair, or 'same' / 'valid', as torch.nn.Conv2d takes it."""
    if isinstance(value, str):
        if value in ("same", "valid"):
            return value
        raise FieldError(f"expected an integer, an [h, w] pair, 'same' or 'valid', found '{value}'")
    return _pad_int(value)


def window_terms(n: int, k: int, p: int, d: int) -> tuple[int, Expr]:
    """The numerator in + 2p - d(k-1) - 1 and its tree, read as '32 - 5', '14 + 2*1 - 3'."""
    value = n + 2 * p - d * (k - 1) - 1
    tree = op("+", n, op("*", 2, p)) if p else num(n)
    tree = op("-", tree, k) if d == 1 else op("-", op("-", tree, op("*", d, op("-", k, 1))), 1)
    return value, tree


def conv_axis(n: int, k: int, s: int, p: int, d: int) -> tuple[int, Axis]:
    """One axis of a convolution: (output size, its derivation)."""
    num_, terms = window_terms(n, k, p, d)
    out = num_ // s + 1
    if s == 1:
        return out, Axis(op("+", terms, 1), out)
    return out, Axis(op("+", op("/" if num_ % s == 0 else "//", terms, s), 1), out)


def _conv2d(a: Mapping[str, Any], inp: LayerInput) -> Inferred:
    need_rank(
        inp,
        3,
        "conv2d",
        "conv2d follows the input image or another conv/pool layer, before any flatten",
    )
    c, h, w = inp.shape
    if a["in_channels"] is not None and a["in_channels"] != c:
        raise ShapeProblem(
            f"in_channels is {a['in_channels']}, but its input {fmt_shape(inp.shape)} has {c} "
            "channels",
            hint=f"remove in_channels to infer it, or set it to {c}",
            key="in_channels",
        )
    groups, cout = a["groups"], a["out_channels"]
    if c % groups or cout % groups:
        raise ShapeProblem(
            f"groups {groups} must divide both in_channels ({c}) and out_channels ({cout})",
            hint="choose groups among the common divisors of the two",
            key="groups",
        )
    (kh, kw), (sh, sw), (dh, dw) = a["kernel_size"], a["stride"], a["dilation"]
    pad = a["padding"]
    if pad == "same":
        if (sh, sw) != (1, 1):
            raise ShapeProblem(
                f"padding 'same' needs stride 1, found stride {fmt_pair(a['stride'])}",
                hint="torch does not support 'same' with strided convolutions; give padding as a "
                "number",
                key="padding",
            )
        oh, ow = h, w
        axes = ()
        formula = f"'same' padding keeps {h} x {w}"
    else:
        ph, pw = (0, 0) if pad == "valid" else pad
        for axis, n, k, p, d in (("height", h, kh, ph, dh), ("width", w, kw, pw, dw)):
            span = d * (k - 1) + 1
            if n + 2 * p < span:
                raise ShapeProblem(
                    f"the kernel spans {span} along {axis}, more than the "
                    + (f"padded input {n} + 2*{p} = {n + 2 * p}" if p else f"input's {n}")
                    + f" (input {fmt_shape(inp.shape)})",
                    hint="use a smaller kernel_size or dilation, add padding, or remove a pooling "
                    "layer before it",
                    key="kernel_size",
                )
        (oh, th), (ow, tw) = conv_axis(h, kh, sh, ph, dh), conv_axis(w, kw, sw, pw, dw)
        square = h == w and (kh, sh, ph, dh) == (kw, sw, pw, dw)
        axes = (th,) if square else (th, tw)
        formula = axes_text(axes)
    out = (cout, oh, ow)
    per_out = (c // groups) * kh * kw
    params = cout * per_out + (cout if a["bias"] else 0)
    flops = numel(out) * (2 * per_out + (1 if a["bias"] else 0))
    resolved = dict(a, in_channels=c, padding=pad)
    return Inferred(
        out_shape=out,
        formula=formula,
        axes=axes,
        params=params,
        flops=flops,
        args={"in_channels": c, "out_channels": cout, "kernel_size": (kh, kw)},
        tensors=(("weight", (cout, c // groups, kh, kw)),)
        + ((("bias", (cout,)),) if a["bias"] else ()),
        options=options(
            resolved,
            {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True},
        ),
    )


register(
    LayerKind(
        type="conv2d",
        prefix="conv",
        params=(
            Param("out_channels", integer(1, 65536), doc="number of filters"),
            Param("kernel_size", _size, doc="int or [h, w]"),
            Param("stride", _stride, (1, 1), "int or [h, w]"),
            Param("padding", padding, (0, 0), "int, [h, w], 'same' or 'valid'"),
            Param("dilation", _size, (1, 1), "int or [h, w]"),
            Param("groups", integer(1, 65536), 1, "channel groups"),
            Param("bias", boolean, True, "learn an additive bias"),
            Param("in_channels", integer(1, 65536), None, "optional; inferred and checked"),
        ),
        rule=_conv2d,
        module=True,
        torch="nn.Conv2d",
        summary="2-D convolution",
    )
)
