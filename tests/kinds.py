"""One row per registered layer kind: everything the tests know about a kind, in one place.

A row says which input rank the kind takes, how to draw its keys at random (for the hypothesis
strategies in strategies.py), how to build the same layer directly in torch (the oracle of
test_shapes_oracle.py, independent of lenetc's renderer), and one example stack that uses the
kind with options that change its generated call (test_codegen.py). Adding a layer kind adds one
row to KINDS (and, where the kind is unusual, a draw or torch helper above it); test_render.py and
test_shapes_oracle.py fail until the row exists.

The draw functions track shapes with torch's documented formulas only to steer the draw toward
stacks that go deep; they never decide what a test expects (torch does).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import nn

Shape = tuple[int, ...]
Draw = Callable[[st.SearchStrategy], Any]
# draw(draw, input shape or None, fit) -> (keys, output shape or None); fit=False draws blind.
DrawKeys = Callable[[Draw, Any, bool], Any]


# ---- torch's size rules, used only to steer -------------------------------------------------


def _window_out(n: int, k: int, s: int, p: int, d: int, ceil: bool = False) -> int:
    num = n + 2 * p - d * (k - 1) - 1
    if num < 0:
        return 0
    out = (-(-num // s) if ceil else num // s) + 1
    if ceil and (out - 1) * s >= n + p:
        out -= 1
    return out


def _pair(v: Any) -> tuple[int, int]:
    return (v[0], v[1]) if isinstance(v, list) else (v, v)


def _size(draw: Draw, lo: int, hi: int, square_bias: bool = True) -> int | list[int]:
    """An int, or (less often) an [h, w] list, each in lo..hi."""
    if draw(st.integers(0, 3)) or not square_bias:
        return draw(st.integers(lo, hi))
    return [draw(st.integers(lo, hi)), draw(st.integers(lo, hi))]


def _maybe(draw: Draw, args: dict, key: str, value: Any, default: Any) -> None:
    """Write key only sometimes, and only when it differs from lenetc's default (or at random)."""
    if value != default or draw(st.integers(0, 4)) == 0:
        args[key] = value


# ---- one row per layer kind ------------------------------------------------------------------


def _conv2d(draw: Draw, shape: Shape | None, fit: bool) -> tuple[dict, Shape | None]:
    image = shape is not None and len(shape) == 3
    c = shape[0] if image else draw(st.integers(1, 6))
    groups = draw(st.sampled_from([1, 1, 1, 2, 3]))
    if fit and c % groups:
        groups = 1
    out_channels = groups * draw(st.integers(1, 4)) if fit else draw(st.integers(1, 8))
    args: dict[str, Any] = {"type": "conv2d", "out_channels": out_channels}
    args["kernel_size"] = _size(draw, 1, 5)
    stride = _size(draw, 1, 3)
    dilation = _size(draw, 1, 2)
    pad_kind = draw(st.integers(0, 9))
    padding: Any = "same" if pad_kind == 0 else "valid" if pad_kind == 1 else _size(draw, 0, 2)
    if fit and padding == "same":
        stride = 1
    if fit and image:  # shrink the kernel until it fits the (padded) input
        (kh, kw), (dh, dw) = _pair(args["kernel_size"]), _pair(dilation)
        (ph, pw) = (0, 0) if isinstance(padding, str) else _pair(padding)
        if padding == "same":
            ph = pw = 10**6  # 'same' always fits
        kh = max(1, min(kh, (shape[1] + 2 * ph - 1) // dh + 1))
        kw = max(1, min(kw, (shape[2] + 2 * pw - 1) // dw + 1))
        args["kernel_size"] = kh if kh == kw else [kh, kw]
    _maybe(draw, args, "stride", stride, 1)
    _maybe(draw, args, "padding", padding, 0)
    _maybe(draw, args, "dilation", dilation, 1)
    _maybe(draw, args, "groups", groups, 1)
    _maybe(draw, args, "bias", draw(st.booleans()), True)
    if draw(st.integers(0, 5)) == 0:
        args["in_channels"] = c if fit or draw(st.booleans()) else c + draw(st.integers(1, 3))
    if not image:
        return args, None
    if padding == "same":
        return args, (out_channels, shape[1], shape[2])
    (kh, kw), (sh, sw), (dh, dw) = _pair(args["kernel_size"]), _pair(stride), _pair(dilation)
    (ph, pw) = (0, 0) if padding == "valid" else _pair(padding)
    oh, ow = _window_out(shape[1], kh, sh, ph, dh), _window_out(shape[2], kw, sw, pw, dw)
    return args, (out_channels, oh, ow) if oh > 0 and ow > 0 else None


def _pool(type_: str) -> Callable[[Draw, Shape | None, bool], tuple[dict, Shape | None]]:
    def draw_pool(draw: Draw, shape: Shape | None, fit: bool) -> tuple[dict, Shape | None]:
        image = shape is not None and len(shape) == 3
        kernel = _size(draw, 1, 4)
        if fit and image:
            kh, kw = _pair(kernel)
            kh, kw = min(kh, shape[1]), min(kw, shape[2])
            kernel = kh if kh == kw else [kh, kw]
        args: dict[str, Any] = {"type": type_, "kernel_size": kernel}
        kh, kw = _pair(kernel)
        stride = draw(st.one_of(st.none(), st.integers(1, 3)))
        if stride is not None:
            args["stride"] = stride
        padding = _size(draw, 0, 2)
        if fit:
            ph, pw = _pair(padding)
            ph, pw = min(ph, kh // 2), min(pw, kw // 2)
            padding = ph if ph == pw else [ph, pw]
        _maybe(draw, args, "padding", padding, 0)
        dilation = 1
        if type_ == "max_pool2d":
            dilation = draw(st.sampled_from([1, 1, 2]))
            if fit and image and dilation * (max(kh, kw) - 1) + 1 > min(shape[1:]):
                dilation = 1
            _maybe(draw, args, "dilation", dilation, 1)
        ceil = draw(st.booleans())
        _maybe(draw, args, "ceil_mode", ceil, False)
        if type_ == "avg_pool2d":
            _maybe(draw, args, "count_include_pad", draw(st.booleans()), True)
        if not image:
            return args, None
        (sh, sw), (ph, pw) = _pair(stride if stride is not None else kernel), _pair(padding)
        oh = _window_out(shape[1], kh, sh, ph, dilation, ceil)
        ow = _window_out(shape[2], kw, sw, pw, dilation, ceil)
        return args, (shape[0], oh, ow) if oh > 0 and ow > 0 else None

    return draw_pool


def _adaptive(draw: Draw, shape: Shape | None, fit: bool) -> tuple[dict, Shape | None]:
    size = _size(draw, 1, 4)
    oh, ow = _pair(size)
    out = (shape[0], oh, ow) if shape is not None and len(shape) == 3 else None
    return {"type": "adaptive_avg_pool2d", "output_size": size}, out


def _batch_norm(draw: Draw, shape: Shape | None, fit: bool) -> tuple[dict, Shape | None]:
    args: dict[str, Any] = {"type": "batch_norm2d"}
    _maybe(draw, args, "eps", draw(st.sampled_from([1.0e-5, 1.0e-3, 0.1])), 1.0e-5)
    _maybe(draw, args, "momentum", draw(st.sampled_from([0.1, 0.01, 0.5, 1.0])), 0.1)
    _maybe(draw, args, "affine", draw(st.booleans()), True)
    image = shape is not None and len(shape) == 3
    if draw(st.integers(0, 4)) == 0:
        c = shape[0] if shape else 4
        args["num_features"] = c if fit or draw(st.booleans()) else c + 1
    return args, shape if image else None


def _flatten(draw: Draw, shape: Shape | None, fit: bool) -> tuple[dict, Shape | None]:
    if shape is None:
        return {"type": "flatten"}, None
    n = 1
    for d in shape:
        n *= d
    return {"type": "flatten"}, (n,)


def _linear(draw: Draw, shape: Shape | None, fit: bool) -> tuple[dict, Shape | None]:
    out = draw(st.integers(1, 16))
    args: dict[str, Any] = {"type": "linear", "out_features": out}
    _maybe(draw, args, "bias", draw(st.booleans()), True)
    flat = shape is not None and len(shape) == 1
    if draw(st.integers(0, 4)) == 0:
        n = shape[-1] if shape else 8
        args["in_features"] = n if fit or draw(st.booleans()) else n + draw(st.integers(1, 5))
    return args, (out,) if flat else None


def _activation(type_: str, **keys: Any) -> DrawKeys:
    def draw_act(draw: Draw, shape: Shape | None, fit: bool) -> tuple[dict, Shape | None]:
        args: dict[str, Any] = {"type": type_}
        for key, values in keys.items():
            _maybe(draw, args, key, draw(st.sampled_from(values)), values[0])
        return args, shape

    return draw_act


def _over_axis(type_: str) -> DrawKeys:
    def draw_softmax(draw: Draw, shape: Shape | None, fit: bool) -> tuple[dict, Shape | None]:
        rank = len(shape) + 1 if shape else 4  # torch counts the batch axis
        if fit and shape:
            dim = draw(st.sampled_from([*range(1, rank), *range(-rank + 1, 0)]))
        else:
            dim = draw(st.integers(-4, 3))
        args: dict[str, Any] = {"type": type_}
        _maybe(draw, args, "dim", dim, 1)
        return args, shape

    return draw_softmax


def _batch_norm1d(draw: Draw, shape: Shape | None, fit: bool) -> tuple[dict, Shape | None]:
    args: dict[str, Any] = {"type": "batch_norm1d"}
    _maybe(draw, args, "eps", draw(st.sampled_from([1.0e-5, 1.0e-3, 0.1])), 1.0e-5)
    _maybe(draw, args, "momentum", draw(st.sampled_from([0.1, 0.01, 0.5, 1.0])), 0.1)
    _maybe(draw, args, "affine", draw(st.booleans()), True)
    flat = shape is not None and len(shape) == 1
    if draw(st.integers(0, 4)) == 0:
        n = shape[0] if shape else 4
        args["num_features"] = n if fit or draw(st.booleans()) else n + 1
    return args, shape if flat else None


def _join(type_: str) -> DrawKeys:
    """A join on its own reads the network's input twice (`x + x`, `torch.cat([x, x])`); inside
    graphs (strategies.graphs) it joins branches. Not drawn inside a stack."""

    def draw_join(draw: Draw, shape: Shape | None, fit: bool) -> tuple[dict, Shape | None]:
        args: dict[str, Any] = {"type": type_, "inputs": ["input", "input"]}
        if type_ == "add":
            return args, shape
        rank = len(shape) + 1 if shape else 4
        dim = draw(st.sampled_from([*range(1, rank), *range(-rank + 1, 0)])) if fit else None
        dim = draw(st.integers(-4, 3)) if dim is None else dim
        _maybe(draw, args, "dim", dim, 1)
        if shape is None:
            return args, None
        axis = dim % rank - 1 if -rank <= dim < rank and dim % rank else None
        if axis is None:
            return args, None
        return args, tuple(2 * d if i == axis else d for i, d in enumerate(shape))

    return draw_join


# ---- torch, built straight from the YAML keys: the oracle -------------------------------------


def _t(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


# One row per kind: (keys, input tensor) -> (callable on the tensor, nn.Module or None).
Builder = Callable[[dict, torch.Tensor], tuple[Callable[[torch.Tensor], torch.Tensor], Any]]


def torch_conv2d(a: dict, x: torch.Tensor):
    m = nn.Conv2d(
        a.get("in_channels", x.shape[1]),
        a["out_channels"],
        _t(a["kernel_size"]),
        stride=_t(a.get("stride", 1)),
        padding=_t(a.get("padding", 0)),
        dilation=_t(a.get("dilation", 1)),
        groups=a.get("groups", 1),
        bias=a.get("bias", True),
    )
    return m, m


def torch_pool(fn: Callable, *extra: str):
    def build(a: dict, x: torch.Tensor):
        kw = {k: _t(a[k]) for k in ("stride", "padding", "ceil_mode", *extra) if k in a}
        return (lambda t: fn(t, _t(a["kernel_size"]), **kw)), None

    return build


def torch_linear(a: dict, x: torch.Tensor):
    m = nn.Linear(a.get("in_features", x.shape[-1]), a["out_features"], bias=a.get("bias", True))
    return m, m


def torch_batch_norm2d(a: dict, x: torch.Tensor):
    m = nn.BatchNorm2d(
        a.get("num_features", x.shape[1] if x.dim() > 1 else 1),
        eps=a.get("eps", 1e-5),
        momentum=a.get("momentum", 0.1),
        affine=a.get("affine", True),
    ).eval()
    return m, m


def torch_batch_norm1d(a: dict, x: torch.Tensor):
    m = nn.BatchNorm1d(
        a.get("num_features", x.shape[1] if x.dim() > 1 else 1),
        eps=a.get("eps", 1e-5),
        momentum=a.get("momentum", 0.1),
        affine=a.get("affine", True),
    ).eval()
    return m, m


def torch_add(a: dict, xs: list[torch.Tensor]):
    """Joins take the list of their operands."""
    return (lambda ts: functools.reduce(torch.add, ts)), None


def torch_cat(a: dict, xs: list[torch.Tensor]):
    return (lambda ts: torch.cat(ts, dim=a.get("dim", 1))), None


def torch_fn(fn: Callable, **defaults: Any):
    def build(a: dict, x: torch.Tensor):
        kw = {k: a.get(k, v) for k, v in defaults.items()}
        return (lambda t: fn(t, **kw)), None

    return build


def torch_adaptive_avg_pool2d(a: dict, x: torch.Tensor):
    return (lambda t: F.adaptive_avg_pool2d(t, _t(a["output_size"]))), None


def torch_flatten(a: dict, x: torch.Tensor):
    return (lambda t: torch.flatten(t, 1)), None


@dataclass(frozen=True)
class Kind:
    takes: int  # the input rank the kind fits: 3 (images), 1 (flat) or 0 (any)
    draw: DrawKeys
    torch: Builder  # a join's builder and callable take the list of its operands
    example: tuple[list[int], list[dict[str, Any]]]  # (input shape, layers)
    join: bool = False  # reads several layers (add, cat): drawn in graphs, never inside a stack


KINDS: dict[str, Kind] = {
    "conv2d": Kind(
        takes=3,
        draw=_conv2d,
        torch=torch_conv2d,
        example=(
            [3, 12, 9],
            [
                {
                    "type": "conv2d",
                    "out_channels": 6,
                    "kernel_size": [3, 2],
                    "stride": [2, 1],
                    "padding": 1,
                    "dilation": [1, 2],
                    "groups": 3,
                    "bias": False,
                }
            ],
        ),
    ),
    "max_pool2d": Kind(
        takes=3,
        draw=_pool("max_pool2d"),
        torch=torch_pool(F.max_pool2d, "dilation"),
        example=(
            [2, 11, 11],
            [
                {
                    "type": "max_pool2d",
                    "kernel_size": 3,
                    "stride": 2,
                    "padding": 1,
                    "dilation": 2,
                    "ceil_mode": True,
                }
            ],
        ),
    ),
    "avg_pool2d": Kind(
        takes=3,
        draw=_pool("avg_pool2d"),
        torch=torch_pool(F.avg_pool2d, "count_include_pad"),
        example=(
            [2, 9, 7],
            [
                {
                    "type": "avg_pool2d",
                    "kernel_size": [3, 2],
                    "padding": [1, 0],
                    "ceil_mode": True,
                    "count_include_pad": False,
                }
            ],
        ),
    ),
    "adaptive_avg_pool2d": Kind(
        takes=3,
        draw=_adaptive,
        torch=torch_adaptive_avg_pool2d,
        example=([4, 9, 7], [{"type": "adaptive_avg_pool2d", "output_size": [3, 2]}]),
    ),
    "batch_norm2d": Kind(
        takes=3,
        draw=_batch_norm,
        torch=torch_batch_norm2d,
        example=(
            [3, 6, 6],
            [
                {"type": "conv2d", "out_channels": 4, "kernel_size": 3},
                {"type": "batch_norm2d", "eps": 1.0e-3, "momentum": 0.2},
                {"type": "batch_norm2d", "affine": False},
            ],
        ),
    ),
    "flatten": Kind(
        takes=0,
        draw=_flatten,
        torch=torch_flatten,
        example=([2, 3, 4], [{"type": "flatten"}, {"type": "linear", "out_features": 5}]),
    ),
    "linear": Kind(
        takes=1,
        draw=_linear,
        torch=torch_linear,
        example=(
            [12],
            [
                {"type": "linear", "out_features": 7, "bias": False},
                {"type": "linear", "out_features": 3, "in_features": 7},
            ],
        ),
    ),
    "dropout": Kind(
        takes=0,
        draw=_activation("dropout", p=[0.5, 0.0, 0.1, 0.25, 1.0]),
        torch=torch_fn(lambda t, p: F.dropout(t, p=p, training=False), p=0.5),
        example=([10], [{"type": "dropout", "p": 0.3}, {"type": "linear", "out_features": 4}]),
    ),
    "relu": Kind(
        takes=0,
        draw=_activation("relu"),
        torch=torch_fn(F.relu),
        example=([5], [{"type": "relu"}]),
    ),
    "leaky_relu": Kind(
        takes=0,
        draw=_activation("leaky_relu", negative_slope=[0.01, 0.0, 0.2, 1.0]),
        torch=torch_fn(F.leaky_relu, negative_slope=0.01),
        example=([5], [{"type": "leaky_relu", "negative_slope": 0.2}]),
    ),
    "elu": Kind(
        takes=0,
        draw=_activation("elu", alpha=[1.0, 0.5, 2.0]),
        torch=torch_fn(F.elu, alpha=1.0),
        example=([3, 4, 4], [{"type": "elu", "alpha": 0.5}]),
    ),
    "tanh": Kind(
        takes=0,
        draw=_activation("tanh"),
        torch=torch_fn(torch.tanh),
        example=([2, 4, 4], [{"type": "tanh"}]),
    ),
    "sigmoid": Kind(
        takes=0,
        draw=_activation("sigmoid"),
        torch=torch_fn(torch.sigmoid),
        example=([2, 4, 4], [{"type": "sigmoid"}]),
    ),
    "gelu": Kind(
        takes=0,
        draw=_activation("gelu", approximate=["none", "tanh"]),
        torch=torch_fn(F.gelu, approximate="none"),
        example=([6], [{"type": "gelu", "approximate": "tanh"}, {"type": "gelu"}]),
    ),
    "softmax": Kind(
        takes=0,
        draw=_over_axis("softmax"),
        torch=torch_fn(F.softmax, dim=1),
        example=([3, 4, 4], [{"type": "softmax", "dim": 1}]),
    ),
    "log_softmax": Kind(
        takes=0,
        draw=_over_axis("log_softmax"),
        torch=torch_fn(F.log_softmax, dim=1),
        example=([3, 4, 5], [{"type": "log_softmax", "dim": -1}]),
    ),
    "batch_norm1d": Kind(
        takes=1,
        draw=_batch_norm1d,
        torch=torch_batch_norm1d,
        example=(
            [6],
            [
                {"type": "linear", "out_features": 5},
                {"type": "batch_norm1d", "eps": 1.0e-3, "momentum": 0.2},
                {"type": "relu"},
                {"type": "batch_norm1d", "affine": False},
            ],
        ),
    ),
    "add": Kind(
        takes=0,
        draw=_join("add"),
        torch=torch_add,
        join=True,
        example=(
            [3, 6, 6],
            [
                {"type": "conv2d", "name": "a", "out_channels": 3, "kernel_size": 3, "padding": 1},
                {"type": "add", "inputs": ["a", "input"]},
                {"type": "relu"},
            ],
        ),
    ),
    "cat": Kind(
        takes=0,
        draw=_join("cat"),
        torch=torch_cat,
        join=True,
        example=(
            [3, 6, 6],
            [
                {"type": "conv2d", "name": "a", "out_channels": 2, "kernel_size": 1},
                {"type": "cat", "inputs": ["input", "a", "input"], "dim": -3},
                {"type": "max_pool2d", "kernel_size": 2},
            ],
        ),
    ),
}
