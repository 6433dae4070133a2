"""Hypothesis strategies for lenetc specs: random layer stacks (valid or not) and valid specs.

- `stacks()`: an input shape and a list of layers, each a dict as a person writes it in YAML
  (`{"type": "conv2d", "out_channels": 6, "kernel_size": [2, 3]}`). Most layers fit their input;
  a steady share does not (a kernel larger than its input, a linear before any flatten, groups that
  do not divide the channels, ...), so that both verdicts of the torch oracle are exercised.
- `graphs()`: an input shape and layers that name their inputs: random stacks joined by skip
  connections (`add`, with a 1x1 projection where the body changed the shape, or none, so that
  some adds mismatch) and by concatenations of branches (`cat`, along a drawn axis). Every layer a
  later one reads by name is named `n<i>`; nothing dangles, so torch decides every verdict.
- `valid_specs()` / `valid_spec_yaml()`: whole specs (dicts / YAML text) that lenetc and torch
  both accept; `classifier=True` ends them in flatten + linear, so they train on a dataset.
- `spec_yaml(spec)`: the YAML text of a spec dict, one layer per line (so a layer's YAML line is
  the line of each of its keys).
- the keys of each layer kind are drawn by the `draw` column of tests/kinds.py (one row per kind).

The rows track shapes with torch's documented formulas only to steer the draw toward stacks that
go deep; they never decide what a test expects (torch does, in tests/test_shapes_oracle.py).
Sizes stay small so that a real torch forward pass of each stack takes a millisecond.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from kinds import KINDS, Draw, Shape, _pair, _window_out

from lenetc.spec.load import Spec, parse_spec
from lenetc.spec.yamlsafe import load_yaml_text

# Examples per property test: a few hundred by default (CI); LENETC_HYPOTHESIS_EXAMPLES=5000 for a
# thorough run.
EXAMPLES = int(os.environ.get("LENETC_HYPOTHESIS_EXAMPLES", "300"))


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
    first = draw(input_shapes())
    layers, _ = draw(layers_on(first, draw(st.integers(min_layers, max_layers)), misfit))
    return first, layers


STACKABLE = sorted(k for k, row in KINDS.items() if not row.join)


@st.composite
def layers_on(
    draw: Draw, shape: Shape | None, count: int, misfit: int = 5
) -> tuple[list[dict], Shape | None]:
    """`count` single-input layers drawn on `shape` (see stacks), and the steered output shape."""
    layers = []
    for _ in range(count):
        blind = shape is None or (misfit > 0 and draw(st.integers(0, misfit - 1)) == 0)
        if blind:
            kind = draw(st.sampled_from(STACKABLE))
        else:
            fits = [k for k in STACKABLE if KINDS[k].takes in (0, len(shape))]
            kind = draw(st.sampled_from(fits))
        args, shape = KINDS[kind].draw(draw, shape, not blind)
        layers.append(args)
    return layers, shape


@st.composite
def keeping(draw: Draw, shape: Shape, count: int, channels: int | None = None) -> list[dict]:
    """Layers that keep `shape` (but the channel count, when given): 'same' convolutions,
    linear layers of the same width, activations and normalizations. What a residual body or a
    concatenated branch is made of when it is drawn to fit."""
    layers: list[dict] = []
    for i in range(count):
        last = i == count - 1
        pick = draw(st.integers(0, 3))
        if len(shape) == 3 and (pick == 0 or (last and channels)):
            c = channels if last and channels else shape[0]
            k = draw(st.integers(1, 3))
            layers.append(
                {"type": "conv2d", "out_channels": c, "kernel_size": k, "padding": "same"}
            )
        elif len(shape) == 1 and (pick == 0 or (last and channels)):
            layers.append(
                {"type": "linear", "out_features": channels if last and channels else shape[0]}
            )
        else:
            norm = "batch_norm2d" if len(shape) == 3 else "batch_norm1d"
            layers.append({"type": draw(st.sampled_from(["relu", "tanh", norm, "gelu"]))})
    return layers


@st.composite
def graphs(draw: Draw, max_blocks: int = 3, misfit: int = 6) -> tuple[Shape, list[dict]]:
    """(input shape, layers) of a graph: a stem stack, then blocks, each a plain stack, a
    residual block (a body added to its input or to a projection of it) or branches joined by
    cat. Bodies and branches are drawn to fit about half of the time; the others are random
    stacks, so that mismatched joins (and misfit layers) are refused as often as torch refuses
    them."""
    first: Shape = draw(input_shapes())
    shape: Shape | None = first
    layers: list[dict] = []

    def name_last() -> str:
        if not layers:
            return "input"
        layers[-1].setdefault("name", f"n{len(layers) - 1}")
        return layers[-1]["name"]

    def add(new: list[dict], reads: str | None = None) -> str | None:
        """Append layers; the first reads `reads`; returns the name of the last (None if none)."""
        if not new:
            return reads
        if reads is not None:
            new[0]["inputs"] = [reads]
        layers.extend(new)
        return name_last()

    stem, shape = draw(layers_on(shape, draw(st.integers(0, 3)), misfit))
    add(stem)
    for _ in range(draw(st.integers(1, max_blocks))):
        block = draw(st.sampled_from(["stack", "residual", "cat"]))
        if shape is None or block == "stack":
            more, shape = draw(layers_on(shape, draw(st.integers(1, 3)), misfit))
            add(more)
            continue
        start, start_shape = name_last(), shape
        fit = draw(st.booleans())
        if block == "residual":
            n = draw(st.integers(1, 3))
            if fit:
                body, end_shape = draw(keeping(shape, n)), shape
            else:
                body, end_shape = draw(layers_on(shape, n, misfit))
            end = add(body)
            shortcut = start
            if end_shape is not None and end_shape != start_shape and draw(st.booleans()):
                shortcut = add(_projection(start_shape, end_shape), reads=start) or start
            layers.append({"type": "add", "inputs": [end, shortcut]})
            shape = end_shape if end_shape == start_shape else None
        else:
            ends, shapes = [], []
            for _ in range(draw(st.integers(2, 3))):
                n = draw(st.integers(1, 3))
                if fit:
                    c = draw(st.integers(1, 4))
                    branch, out = draw(keeping(start_shape, n, channels=c)), None
                    if branch[-1]["type"] in ("conv2d", "linear"):
                        out = (c, *start_shape[1:])
                    else:
                        out = start_shape
                else:
                    branch, out = draw(layers_on(start_shape, n, misfit))
                ends.append(add(branch, reads=start))
                shapes.append(out)
            cat: dict = {"type": "cat", "inputs": ends}
            if draw(st.integers(0, 4)) == 0:
                cat["dim"] = draw(st.sampled_from([-1, 2, -2, 3, 0]))
            layers.append(cat)
            dim = cat.get("dim", 1)
            rank = len(start_shape) + 1
            ok = None not in shapes and len({len(s) for s in shapes}) == 1
            ok = ok and -rank <= dim < rank and dim % rank != 0
            if ok:
                axis = dim % rank - 1
                rest = {tuple(d for i, d in enumerate(s) if i != axis) for s in shapes}
                ok = len(rest) == 1
            shape = (
                tuple(
                    sum(s[axis] for s in shapes) if i == axis else d
                    for i, d in enumerate(shapes[0])
                )
                if ok
                else None
            )
    return first, layers


def _projection(start: Shape, end: Shape) -> list[dict]:
    """The 1x1 convolution (or linear layer) that brings `start` to `end`, where one can."""
    if len(start) == 1 and len(end) == 1:
        return [{"type": "linear", "out_features": end[0]}]
    if len(start) == 3 and len(end) == 3 and end[1] and start[1] % end[1] == 0:
        stride = start[1] // end[1]
        if start[2] == end[2] * stride:
            conv = {"type": "conv2d", "out_channels": end[0], "kernel_size": 1}
            if stride > 1:
                conv["stride"] = stride
            return [conv, {"type": "batch_norm2d"}]
    return []


# Valid layer names that are easy to get wrong in generated source: capitals, digits, underscores,
# names of torch functions that must still work as attributes, and one long enough to wrap a line.
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


@st.composite
def valid_specs(
    draw: Draw, classifier: bool = False, max_layers: int = 8, named: bool = False
) -> dict:
    """A whole spec dict that lenetc and torch accept (no train:, so every default applies).

    classifier=True ends in flatten (for images) + linear to 2..10 classes, trainable as is;
    named=True gives some layers a name of their own, drawn from NAMES.
    """
    while True:  # a stack whose steering lost track of a shape is redrawn (rare)
        shape, layers = draw(stacks(max_layers=max_layers, misfit=0))
        if _steered_ok(shape, layers):
            break
    if classifier:
        layers = [*layers, {"type": "flatten"}, {"type": "linear", "out_features": 10}]
        layers[-1]["out_features"] = draw(st.integers(2, 10))
    if named:
        names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=len(layers)))
        for layer, name in zip(layers, names):
            if draw(st.booleans()):
                layer["name"] = name
    return {"name": "generated", "input": {"shape": list(shape)}, "layers": layers}


def spec_from_dict(data: dict[str, Any], file: str = "random.yaml") -> Spec:
    """A Spec from a plain mapping, through the real YAML loader and parser (line numbers too)."""
    return parse_spec(load_yaml_text(spec_yaml(data).encode("utf-8"), file), file, Path("."), "")


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
