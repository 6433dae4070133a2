"""Targets (c, int8): integer layers -> c/model_int8.c and c/model_int8_weights.h.

Takes the trace and the int8 layers as plain numbers (`Int8Layer`: kind, sizes, zero points,
int8 weights, int32 bias, per-channel fixed-point multipliers and shifts; quant/c_export.py reads
them from model.int8.onnx); returns the files' text. The kernels (templates/c/int8/) are one
static function per operation with every size passed as a literal; flatten, dropout and a
folded batch norm are the same memory. Weights are written as exact decimal integers. Chains only:
a graph (add, cat, average pooling) has no int8 C variant yet, and `unsupported` says why.
No torch import.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...check.shapes import ShapeTrace
from ...layers.base import numel
from ..templates import environment
from .about import model_view
from .indent import wrap_long_calls
from .literals import hex_float

SOURCE, WEIGHTS = "model_int8.c", "model_int8_weights.h"
SAME_MEMORY = ("flatten", "dropout", "batch_norm2d")  # batch norm: folded into the conv before
# Each kernel's arguments after (input, output): its arrays by suffix, then its integers by name.
KERNELS = {
    "conv2d": (
        ("w", "b", "m0", "shift"),
        "ci h wd co oh ow kh kw sy sx py px dy dx groups zx zy hp wp",
    ),
    "conv2d_patches": (
        ("w", "b", "m0", "shift"),
        "ci h wd co oh ow kh kw sy sx py px dy dx groups zx zy",
    ),
    "linear": (("w", "b", "m0", "shift"), "in out zx zy"),
    "max_pool2d": ((), "c h wd oh ow kh kw sy sx py px dy dx"),
    "relu": ((), "n zx"),
    "rescale": ((), "n zx zy m0 shift"),
}
KINDS = (*KERNELS, *SAME_MEMORY)


@dataclass(frozen=True)
class Int8Layer:
    name: str  # the spec layer (a C identifier: spec names are)
    kind: str
    call: dict  # the kernel's integer arguments by name
    arrays: tuple[tuple[str, str, np.ndarray], ...] = ()  # (suffix, C type, values)


def unsupported(trace: ShapeTrace) -> str | None:
    if not trace.is_chain:
        return "the int8 C variant covers chains; this spec is a graph (add / cat)"
    other = [t.node.type for t in trace.nodes if t.node.type not in KINDS]
    if other:
        return f"the int8 C variant has no kernel for {', '.join(sorted(set(other)))}"
    return None


def render_int8(
    trace: ShapeTrace, layers: Sequence[Int8Layer], io: dict, arena: int
) -> dict[str, str]:
    """The two files; `io`: the input's and output's scale and zero point."""
    cur, steps, used = 0, [], set()
    for layer in layers:
        if layer.kind in SAME_MEMORY:
            continue
        arrays, keys = KERNELS[layer.kind]
        names = {suffix: f"{layer.name}_{suffix}" for suffix, _, _ in layer.arrays}
        args = [f"arena[{cur}]", f"arena[{1 - cur}]"]
        args += [names.get(suffix, "0") for suffix in arrays]  # "0": a layer without bias
        args += [str(layer.call[k]) for k in keys.split()]
        steps.append(f"{layer.kind}({', '.join(args)}); /* {layer.name} */")
        used.add(layer.kind)
        cur = 1 - cur
    convs = [layer.call for layer in layers if layer.kind == "conv2d"]
    windows = [
        a["oh"] * a["ow"] * a["ci"] // a["groups"] * a["kh"] * a["kw"]
        for a in (layer.call for layer in layers if layer.kind == "conv2d_patches")
    ]
    padded = [a["ci"] * a["hp"] * a["wp"] for a in convs if (a["hp"], a["wp"]) != (a["h"], a["wd"])]
    m = model_view(trace, None)
    m.update(
        padded=str(max(padded, default=1)),
        acc=str(max([a["oh"] * a["ow"] for a in convs], default=1)),
        patches=str(max(windows, default=1)),
        weights_file=WEIGHTS,
        arena=str(arena),
        in_size=str(numel(trace.spec.input_shape)),
        out_size=str(numel(trace.output_shape)),
        in_scale=hex_float(float(np.float32(io["in_scale"]))),
        plus_in_zero=_signed("+", int(io["in_zero"])),
        out_scale=hex_float(float(np.float32(io["out_scale"]))),
        minus_out_zero=_signed("-", int(io["out_zero"])),
        out_buffer=str(cur),
    )
    template = environment().get_template(f"c/int8/{SOURCE}.j2")
    source = wrap_long_calls(template.render(m=m, steps=steps, used=sorted(used)))
    return {SOURCE: source, WEIGHTS: _weights(m["title"], layers)}


def _signed(op: str, value: int) -> str:
    """`+ 5`, `- 3` for op '+' and value -3 ...: a zero point added or subtracted, as C text."""
    if op == "-":
        value = -value
    return f"+ {value}" if value >= 0 else f"- {-value}"


def _weights(title: str, layers: Sequence[Int8Layer]) -> str:
    lines = [f"/* {title}: int8 weights, int32 biases and requantization, exact. */", ""]
    lines += ["#include <stdint.h>", ""]
    for layer in layers:
        for suffix, ctype, values in layer.arrays:
            flat = np.asarray(values).ravel()
            lines.append(f"static const {ctype} {layer.name}_{suffix}[{flat.size}] = {{")
            for i in range(0, flat.size, 16):
                lines.append("    " + ", ".join(str(int(v)) for v in flat[i : i + 16]) + ",")
            lines.append("};")
    return "\n".join(lines) + "\n"


def read_int8_weights(text: str) -> dict[str, np.ndarray]:
    """model_int8_weights.h -> {array name: values}: what the C holds, for the exactness test."""
    import re

    found = {}
    for name, body in re.findall(r"static const \w+ (\w+)\[\d+\] = \{([^}]*)\};", text):
        found[name] = np.array([int(v) for v in body.replace("\n", " ").split(",") if v.strip()])
    return found
