"""Hypothesis strategies for lenetc specs: random layer stacks (valid or not) and valid specs.

- `stacks()`: an input shape and a list of layers, each a dict as a person writes it in YAML
  (`{"type": "conv2d", "out_channels": 6, "kernel_size": [2, 3]}`). Most layers fit their input;
  a steady share does not (a kernel larger than its input, a linear before any flatten, groups that
  do not divide the channels, ...), so that both verdicts of the torch oracle are exercised.
- `valid_specs()` / `valid_spec_yaml()`: whole specs (dicts / YAML text) that lenetc and torch
  both accept; `classifier=True` ends them in flatten + linear, so they train on a dataset.
- `spec_yaml(spec)`: the YAML text of a spec dict, one layer per line (so a layer's YAML line is
  the line of each of its keys).
- `KINDS`: one row per registered layer kind: how to draw its keys for a given input shape. A new
  kind needs a row here (tests/test_shapes_oracle.py fails otherwise).

The rows track shapes with torch's documented formulas only to steer the draw toward stacks that
go deep; they never decide what a test expects (torch does, in tests/test_shapes_oracle.py).
Sizes stay small so that a real torch forward pass of each stack takes a millisecond.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

# Examples per property test: a few hundred by default (CI); LENETC_HYPOTHESIS_EXAMPLES=5000 for a
# thorough run.
EXAMPLES = int(os.environ.get("LENETC_HYPOTHESIS_EXAMPLES", "300"))

Shape = tuple[int, ...]
Draw = Callable[[st.SearchStrategy], Any]


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


@dataclass(frozen=True)
class KindRow:
    """How to draw one kind's keys. `draw(draw, shape, fit)` returns (args, output shape or None).

    shape is the input shape (None when an earlier layer did not fit); with fit=True the keys are
    chosen to fit it; with fit=False they are drawn from the same ranges without looking.
    `takes` is the input rank the kind fits: 3 (images), 1 (flat) or 0 (any).
    """

    takes: int
    draw: Callable[[Draw, Shape | None, bool], tuple[dict, Shape | None]]


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


def _activation(type_: str, **keys: Any) -> KindRow:
    def draw_act(draw: Draw, shape: Shape | None, fit: bool) -> tuple[dict, Shape | None]:
        args: dict[str, Any] = {"type": type_}
        for key, values in keys.items():
            _maybe(draw, args, key, draw(st.sampled_from(values)), values[0])
        return args, shape

    return KindRow(0, draw_act)


def _over_axis(type_: str) -> KindRow:
    def draw_softmax(draw: Draw, shape: Shape | None, fit: bool) -> tuple[dict, Shape | None]:
        rank = len(shape) + 1 if shape else 4  # torch counts the batch axis
        if fit and shape:
            dim = draw(st.sampled_from([*range(1, rank), *range(-rank + 1, 0)]))
        else:
            dim = draw(st.integers(-4, 3))
        args: dict[str, Any] = {"type": type_}
        _maybe(draw, args, "dim", dim, 1)
        return args, shape

    return KindRow(0, draw_softmax)


KINDS: dict[str, KindRow] = {
    "conv2d": KindRow(3, _conv2d),
    "max_pool2d": KindRow(3, _pool("max_pool2d")),
    "avg_pool2d": KindRow(3, _pool("avg_pool2d")),
    "adaptive_avg_pool2d": KindRow(3, _adaptive),
    "batch_norm2d": KindRow(3, _batch_norm),
    "flatten": KindRow(0, _flatten),
    "linear": KindRow(1, _linear),
    "dropout": _activation("dropout", p=[0.5, 0.0, 0.1, 0.25, 1.0]),
    "relu": _activation("relu"),
    "leaky_relu": _activation("leaky_relu", negative_slope=[0.01, 0.0, 0.2, 1.0]),
    "tanh": _activation("tanh"),
    "sigmoid": _activation("sigmoid"),
    "gelu": _activation("gelu", approximate=["none", "tanh"]),
    "softmax": _over_axis("softmax"),
    "log_softmax": _over_axis("log_softmax"),
}


# ---- stacks and specs ------------------------------------------------------------------------


@st.composite
def input_shapes(draw: Draw, image: bool | None = None) -> Shape:
    """[channels, height, width] (small) or [features]."""
    if image is None:
        image = draw(st.integers(0, 3)) > 0
    if image:
        return (draw(st.integers(1, 4)), draw(st.integers(1, 32)), draw(st.integers(1, 32)))
    return (draw(st.integers(1, 64)),)


@st.composite
def stacks(
    draw: Draw, min_layers: int = 1, max_layers: int = 8, misfit: int = 5
) -> tuple[Shape, list[dict]]:
    """(input shape, layers). Each layer is drawn to fit its input, except about one in `misfit`
    (misfit=0: never), which picks any kind with keys drawn blind; after a misfit, shapes are
    unknown and the rest is drawn blind too."""
    shape: Shape | None = draw(input_shapes())
    first = shape
    layers = []
    for _ in range(draw(st.integers(min_layers, max_layers))):
        blind = shape is None or (misfit > 0 and draw(st.integers(0, misfit - 1)) == 0)
        if blind:
            kind = draw(st.sampled_from(sorted(KINDS)))
        else:
            fits = [k for k, row in KINDS.items() if row.takes in (0, len(shape))]
            kind = draw(st.sampled_from(sorted(fits)))
        args, shape = KINDS[kind].draw(draw, shape, not blind)
        layers.append(args)
    return first, layers


@st.composite
def valid_specs(draw: Draw, classifier: bool = False, max_layers: int = 8) -> dict:
    """A whole spec dict that lenetc and torch accept (no train:, so every default applies).

    classifier=True ends in flatten (for images) + linear to 2..10 classes, trainable as is.
    """
    while True:  # a stack whose steering lost track of a shape is redrawn (rare)
        shape, layers = draw(stacks(max_layers=max_layers, misfit=0))
        if _steered_ok(shape, layers):
            break
    if classifier:
        layers = [*layers, {"type": "flatten"}, {"type": "linear", "out_features": 10}]
        layers[-1]["out_features"] = draw(st.integers(2, 10))
    return {"name": "generated", "input": {"shape": list(shape)}, "layers": layers}


def _steered_ok(shape: Shape, layers: list[dict]) -> bool:
    s: Shape | None = shape
    for args in layers:
        if s is None or KINDS[args["type"]].takes not in (0, len(s)):
            return False
        s = _replay(args, s)
    return s is not None


def _replay(args: dict, shape: Shape) -> Shape | None:
    """The steered output of a drawn layer, recomputed from the keys it wrote down."""
    kind = args["type"]
    if kind in ("conv2d", "max_pool2d", "avg_pool2d"):
        (kh, kw) = _pair(args["kernel_size"])
        (sh, sw) = _pair(args.get("stride", 1 if kind == "conv2d" else args["kernel_size"]))
        (dh, dw) = _pair(args.get("dilation", 1))
        pad = args.get("padding", 0)
        if kind == "conv2d" and pad == "same":
            return (args["out_channels"], shape[1], shape[2])
        (ph, pw) = (0, 0) if pad == "valid" else _pair(pad)
        ceil = args.get("ceil_mode", False)
        oh = _window_out(shape[1], kh, sh, ph, dh, ceil)
        ow = _window_out(shape[2], kw, sw, pw, dw, ceil)
        c = args["out_channels"] if kind == "conv2d" else shape[0]
        return (c, oh, ow) if oh > 0 and ow > 0 else None
    if kind == "adaptive_avg_pool2d":
        return (shape[0], *_pair(args["output_size"]))
    if kind == "flatten":
        n = 1
        for d in shape:
            n *= d
        return (n,)
    if kind == "linear":
        return (args["out_features"],)
    return shape


@st.composite
def valid_spec_yaml(draw: Draw, classifier: bool = False) -> str:
    """valid_specs() as YAML text."""
    return spec_yaml(draw(valid_specs(classifier=classifier)))


def stack_spec(shape: Shape, layers: list[dict], name: str = "generated") -> dict:
    return {"name": name, "input": {"shape": list(shape)}, "layers": layers}


def spec_yaml(spec: dict) -> str:
    """YAML text of a spec dict: layers one per line in flow style (`- {type: relu}`), so the
    YAML line of layer i (0-based) is LAYERS_LINE + 1 + i."""
    lines = [f"name: {spec['name']}", f"input: {{shape: {_scalar(spec['input']['shape'])}}}"]
    lines.append("layers:")
    for layer in spec["layers"]:
        lines.append("  - {" + ", ".join(f"{k}: {_scalar(v)}" for k, v in layer.items()) + "}")
    for section in ("train", "export", "verify"):
        if section in spec:
            lines.append(f"{section}: {json.dumps(spec[section])}")
    return "\n".join(lines) + "\n"


LAYERS_LINE = 3  # the line of `layers:` in spec_yaml's text


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        if e and "." not in mantissa:  # PyYAML reads 1e-05 as text; 1.0e-05 as a float
            text = f"{mantissa}.0e{exponent}"
        return text
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, str):
        return value if value.isidentifier() else json.dumps(value)
    return str(value)
