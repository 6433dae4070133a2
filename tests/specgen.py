"""Random valid layer stacks for property tests (hypothesis), and specs built from plain dicts.

`stacks()` draws an input shape and a chain of 1 to 8 layers, tracking the shape with torch's size
rule so that almost every draw is a valid network (the few the checker still refuses are filtered
out by the test with `assume`). It covers every registered kind and the options that change the
generated source. Interim: the checker's tests/strategies.py is meant to replace it once on main.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from lenetc.spec import Spec, parse_spec
from lenetc.yamlsafe import load_yaml_text

# Valid identifiers that are easy to get wrong in generated source: capitals, digits, underscores,
# and names of torch functions that must still work as attributes.
NAMES = [
    "Conv",
    "layer_1",
    "x1",
    "fc",
    "relu",
    "self_",
    "Linear",
    "conv2d",
    "bn",
    "head",
    "a_long_layer_name_that_makes_the_constructor_call_wrap",
]


def spec_from_dict(data: dict[str, Any], file: str = "random.yaml") -> Spec:
    """A Spec from a plain mapping, through the real YAML loader and parser (line numbers too)."""
    raw = yaml.safe_dump(data, sort_keys=False).encode("utf-8")
    return parse_spec(load_yaml_text(raw, file), file, Path("."), "")


def _out(n: int, k: int, s: int, p: int, d: int, ceil: bool = False) -> int:
    num = n + 2 * p - d * (k - 1) - 1
    out = (-(-num // s) if ceil else num // s) + 1
    if ceil and (out - 1) * s >= n + p:
        out -= 1
    return out


@st.composite
def _image_layer(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[dict, tuple[int, ...]]:
    c, h, w = shape
    kind = draw(
        st.sampled_from(
            ["conv2d"] * 4
            + ["max_pool2d", "avg_pool2d"] * 2
            + ["batch_norm2d"] * 2
            + [
                "adaptive_avg_pool2d",
                "relu",
                "leaky_relu",
                "gelu",
                "tanh",
                "sigmoid",
                "dropout",
                "flatten",
                "softmax",
                "log_softmax",
            ]
        )
    )
    layer: dict[str, Any] = {"type": kind}
    if kind == "conv2d":
        groups = draw(st.sampled_from([g for g in (1, 2, 3) if c % g == 0]))
        cout = groups * draw(st.integers(1, 4))
        dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
        kh = draw(st.integers(1, min((h - 1) // dh + 1, 5)))
        kw = draw(st.integers(1, min((w - 1) // dw + 1, 5)))
        stride = draw(st.sampled_from([1, 1, 2, (2, 1)]))
        same = stride == 1 and draw(st.booleans())
        pad = "same" if same else draw(st.integers(0, 1))
        layer.update(out_channels=cout, kernel_size=[kh, kw] if kh != kw else kh)
        if (dh, dw) != (1, 1):
            layer["dilation"] = [dh, dw]
        if stride != 1:
            layer["stride"] = list(stride) if isinstance(stride, tuple) else stride
        sh, sw = stride if isinstance(stride, tuple) else (stride, stride)
        if pad:
            layer["padding"] = pad
        if groups != 1:
            layer["groups"] = groups
        if draw(st.booleans()):
            layer["bias"] = False
        p = 0 if pad in (0, "same") else pad
        oh = h if same else _out(h, kh, sh, p, dh)
        ow = w if same else _out(w, kw, sw, p, dw)
        return layer, (cout, oh, ow)
    if kind in ("max_pool2d", "avg_pool2d"):
        k = draw(st.integers(1, min(h, w, 3)))
        s = draw(st.integers(1, k))
        p = draw(st.integers(0, k // 2))
        ceil = draw(st.booleans())
        layer["kernel_size"] = k
        if s != k:
            layer["stride"] = s
        if p:
            layer["padding"] = p
        if ceil:
            layer["ceil_mode"] = True
        if kind == "avg_pool2d" and draw(st.booleans()):
            layer["count_include_pad"] = False
        return layer, (c, _out(h, k, s, p, 1, ceil), _out(w, k, s, p, 1, ceil))
    if kind == "adaptive_avg_pool2d":
        oh, ow = draw(st.integers(1, h)), draw(st.integers(1, w))
        layer["output_size"] = [oh, ow] if oh != ow else oh
        return layer, (c, oh, ow)
    if kind == "flatten":
        return layer, (c * h * w,)
    return _same_shape(draw, layer), shape


@st.composite
def _flat_layer(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[dict, tuple[int, ...]]:
    kinds = [
        "linear",
        "linear",
        "relu",
        "tanh",
        "sigmoid",
        "leaky_relu",
        "gelu",
        "dropout",
        "softmax",
        "log_softmax",
        "flatten",
    ]
    layer: dict[str, Any] = {"type": draw(st.sampled_from(kinds))}
    if layer["type"] == "linear":
        out = draw(st.integers(1, 32))
        layer["out_features"] = out
        if draw(st.booleans()):
            layer["bias"] = False
        return layer, (out,)
    return _same_shape(draw, layer), shape


def _same_shape(draw: st.DrawFn, layer: dict[str, Any]) -> dict[str, Any]:
    kind = layer["type"]
    if kind == "leaky_relu" and draw(st.booleans()):
        layer["negative_slope"] = draw(st.sampled_from([0.2, 0.1, 0.05]))
    if kind == "gelu" and draw(st.booleans()):
        layer["approximate"] = "tanh"
    if kind == "dropout":
        layer["p"] = draw(st.sampled_from([0.1, 0.25, 0.5]))
    if kind in ("softmax", "log_softmax"):
        layer["dim"] = 1
    if kind == "batch_norm2d" and draw(st.booleans()):
        layer["momentum"] = 0.01
    return layer


@st.composite
def stacks(draw: st.DrawFn) -> dict[str, Any]:
    """A spec mapping: name, input and a valid chain of layers (train/export/verify defaulted)."""
    if draw(st.integers(0, 2)):
        shape: tuple[int, ...] = (
            draw(st.integers(1, 4)),
            draw(st.integers(4, 20)),
            draw(st.integers(4, 20)),
        )
    else:
        shape = (draw(st.integers(1, 48)),)
    layers = []
    current = shape
    used: set[str] = set()
    for _ in range(draw(st.integers(1, 8))):
        strategy = _image_layer(current) if len(current) == 3 else _flat_layer(current)
        layer, current = draw(strategy)
        if layer["type"] in ("conv2d", "linear", "batch_norm2d") and draw(st.booleans()):
            name = draw(st.sampled_from(NAMES))
            if name not in used:
                used.add(name)
                layer["name"] = name
        layers.append(layer)
    return {"name": "random_net", "input": {"shape": list(shape)}, "layers": layers}
