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
from .literals import hex_float

SOURCE, WEIGHTS = "model_int8.c", "model_int8_weights.h"
KINDS = ("conv2d", "linear", "relu", "max_pool2d", "flatten", "dropout", "batch_norm2d", "rescale")


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
    cur, steps = 0, []
    for layer in layers:
        if layer.kind in ("flatten", "dropout", "batch_norm2d"):
            continue  # the same bytes
        a = dict(layer.call)
        src, dst = f"arena[{cur}]", f"arena[{1 - cur}]"
        w = {suffix: f"{layer.name}_{suffix}" for suffix, _, _ in layer.arrays}
        if layer.kind == "conv2d":
            args = [src, dst, w["w"], w.get("b", "0"), w["m0"], w["shift"]] + [
                str(a[k]) for k in "ci h wd co oh ow kh kw sy sx py px dy dx groups zx zy".split()
            ]
        elif layer.kind == "linear":
            args = [src, dst, w["w"], w.get("b", "0"), w["m0"], w["shift"]] + [
                str(a[k]) for k in ("in", "out", "zx", "zy")
            ]
        elif layer.kind == "max_pool2d":
            args = [src, dst] + [str(a[k]) for k in "c h wd oh ow kh kw sy sx py px dy dx".split()]
        elif layer.kind == "relu":
            args = [src, dst, str(a["n"]), str(a["zx"])]
        else:  # rescale
            args = [src, dst] + [str(a[k]) for k in ("n", "zx", "zy", "m0", "shift")]
        steps.append(
            f"{'rescale' if layer.kind == 'rescale' else layer.kind}({', '.join(args)});"
            f" /* {layer.name} */"
        )
        cur = 1 - cur
    m = model_view(trace, None)
    m.update(
        weights_file=WEIGHTS,
        arena=str(arena),
        in_size=str(numel(trace.spec.input_shape)),
        out_size=str(numel(trace.output_shape)),
        in_scale=hex_float(float(np.float32(io["in_scale"]))),
        in_zero=str(int(io["in_zero"])),
        out_scale=hex_float(float(np.float32(io["out_scale"]))),
        out_zero=str(int(io["out_zero"])),
        out_buffer=str(cur),
    )
    source = environment().get_template(f"c/int8/{SOURCE}.j2").render(m=m, steps=steps)
    return {SOURCE: source, WEIGHTS: _weights(m["title"], layers)}


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
