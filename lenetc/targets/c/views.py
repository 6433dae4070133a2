"""Targets (c, views): ShapeTrace -> one `CLayer` per node: the C function's name, every size and
key a fragment may need as C literals, its flags, its weight arrays' names and, for a convolution,
its register blocking. Everything a fragment prints is computed here, once. No torch import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ...check.shapes import ShapeTrace, TracedNode
from ...layers.base import numel
from ..values import identifier
from ..walk import derivation_comment
from .fragments import contract
from .literals import C_RESERVED, RESERVED_PATTERN, c_literal


@dataclass(frozen=True)
class CLayer:
    """What a C fragment sees of one layer: names, C literals, flags; nothing to compute."""

    name: str  # the C function's name (the layer's, unless C reserves it)
    layer: str  # the spec layer's name
    kind: str  # the spec type
    line: int
    comment: str  # the shape after it and its derivation
    v: Mapping[str, str]  # integer and float values as C literals
    f: Mapping[str, bool]  # flags
    p: Mapping[str, str]  # weight arrays by torch parameter name -> C identifier
    # A join's operands (add, cat), in `inputs` order: (parameter name, floats it gives per outer
    # step, where they start in the output's step); one entry per input of any other layer.
    operands: tuple[tuple[str, str, str], ...] = ()


def layer_views(trace: ShapeTrace) -> list[CLayer]:
    """One view per traced node, in trace order; names made unique against C and each other."""
    taken: set[str] = set(C_RESERVED)
    arrays = {f"{t.node.name}_{param}" for t in trace.nodes for param in _layout(t.node.type)}
    views = []
    for t in trace.nodes:
        name = identifier(t.node.name)
        if name in taken or name in arrays or RESERVED_PATTERN.fullmatch(name):
            name = f"{name}_layer"
        taken.add(name)
        v, f = _values(t)
        params = {param: f"{name}_{param}" for param in _layout(t.node.type)}
        comment = derivation_comment([t]).replace("(N, ", "(", 1).replace("*/", "* /")
        views.append(
            CLayer(
                name,
                t.node.name,
                t.node.type,
                t.node.line,
                comment,
                v,
                f,
                params,
                _operands(t, v),
            )
        )
    return views


def _layout(type_: str) -> Mapping[str, tuple[int, ...]]:
    return contract(type_).layout


def _operands(t: TracedNode, v: dict[str, str]) -> tuple[tuple[str, str, str], ...]:
    """Per input: its C parameter name (a0, a1, ...), how many floats it gives per step of the
    axes before the joined one (`outer`, also set in v), and where they start in the output's
    step. The joined axis is `dim` (counting the batch, as torch), else the first."""
    shapes = getattr(t, "in_shapes", ()) or (t.in_shape,)
    axis = t.node.args["dim"] % (len(t.in_shape) + 1) - 1 if "dim" in t.node.args else 0
    v.setdefault("outer", str(numel(t.in_shape[:axis])))
    out, start = [], 0
    for k, shape in enumerate(shapes):
        chunk = numel(shape[axis:])
        out.append((f"a{k}", str(chunk), str(start)))
        start += chunk
    v["step"] = str(start)
    v["operands"] = str(len(out))
    return tuple(out)


def _values(t: TracedNode) -> tuple[dict[str, str], dict[str, bool]]:
    """Every number a fragment may need, as C literals, and every flag; computed here, once."""
    v: dict[str, str] = {}
    f: dict[str, bool] = {}
    for side, shape in (("in", t.in_shape), ("out", t.out_shape)):
        v[f"{side}_size"] = str(numel(shape))
        c, h, w = shape if len(shape) == 3 else (shape[0], 1, 1)
        v[f"{side}_c"], v[f"{side}_h"], v[f"{side}_w"] = str(c), str(h), str(w)
        v[f"{side}_plane"] = str(h * w)
    args = dict(t.node.args)
    for key, value in args.items():
        if isinstance(value, bool):
            f[key] = value
        elif isinstance(value, int):
            v[key] = str(value)
        elif isinstance(value, float):
            v[key] = c_literal(value)
        elif isinstance(value, tuple) and len(value) == 2:
            v[f"{key}_h"], v[f"{key}_w"] = str(value[0]), str(value[1])
    for expand in _EXPANDERS:
        expand(t, args, v, f)
    return v, f


def _window(t: TracedNode, a: dict, v: dict, f: dict) -> None:
    """kernel, stride (the kernel when not given), padding (per side), dilation, and whether a
    window can reach outside the input (then the fragment checks bounds)."""
    if "kernel_size" not in a:
        return
    (kh, kw) = a["kernel_size"]
    sh, sw = a.get("stride") or (kh, kw)
    dh, dw = a.get("dilation", (1, 1))
    pad = a.get("padding", (0, 0))
    if pad == "same":  # torch pads the total d*(k-1) with the odd one at the end
        top, left = dh * (kh - 1) // 2, dw * (kw - 1) // 2
        bottom, right = dh * (kh - 1) - top, dw * (kw - 1) - left
    elif pad == "valid":
        top = left = bottom = right = 0
    else:
        top = bottom = pad[0]
        left = right = pad[1]
    c, h, w = t.in_shape
    _, oh, ow = t.out_shape
    padded = bool(top or left or bottom or right)
    v.update(
        stride_h=str(sh),
        stride_w=str(sw),
        dilation_h=str(dh),
        dilation_w=str(dw),
        pad_top=str(top),
        pad_left=str(left),
        pad_bottom=str(bottom),
        pad_right=str(right),
        padded_h=str(h + top + bottom),
        padded_w=str(w + left + right),
        # the zero-bordered copy of the input a padded window reads (the fragment's `scratch`)
        padded_size=str(c * (h + top + bottom) * (w + left + right) if padded else 0),
        limit_h=str(h + top),  # torch clips a pooling window at the padded edge
        limit_w=str(w + left),
        window=str(kh * kw),
    )
    f["padded"] = padded
    # a window reaches past the input: padding, or ceil_mode's last window
    reach_h, reach_w = (oh - 1) * sh + dh * (kh - 1), (ow - 1) * sw + dw * (kw - 1)
    f["clipped"] = f["padded"] or reach_h >= h or reach_w >= w


def _groups(t: TracedNode, a: dict, v: dict, f: dict) -> None:
    """Channels per group, and the layout of a convolution's accumulators: `block` neighbouring
    outputs of a row per step, each with `lanes` channels (its channels, or 8, one vector, when it
    has fewer: their weights are padded with zeros). The block is the largest divisor of the
    output width whose accumulators fit in 14 vector registers and give the loop over channels at
    least 64 statements: with less work gcc unrolls that loop and keeps the accumulators scalar.
    Without such a block: one output per step, no padding."""
    if "groups" not in a:
        return
    g = a["groups"]
    per = t.out_shape[0] // g
    v["in_per_group"] = str(t.in_shape[0] // g)
    v["out_per_group"] = str(per)
    f["grouped"] = g > 1
    lanes = per if per >= 8 or g > 1 else 8
    vectors = -(-lanes // 8)
    width = t.out_shape[2] if len(t.out_shape) == 3 else 1
    fits = [d for d in range(2, 17) if width % d == 0 and d * vectors <= 14 and d * lanes >= 64]
    v["block"] = str(max(fits, default=1))
    v["lanes"] = str(lanes if fits else per)
    f["lane_padded"] = v["lanes"] != str(per) and g == 1
    v["pad_lanes"] = v["lanes"] if f["lane_padded"] else "0"
    v["weight_stride"] = str(t.out_shape[0] if g > 1 else int(v["lanes"]))
    v["acc"] = str(int(v["block"]) * int(v["lanes"]))  # accumulators of one step


def _axis(t: TracedNode, a: dict, v: dict, f: dict) -> None:
    """softmax's dim (counting the batch, as torch) -> outer x n x inner of one sample."""
    if "dim" in a:
        shape = t.in_shape
        axis = a["dim"] % (len(shape) + 1) - 1
        v["outer"] = str(numel(shape[:axis]))
        v["axis_n"] = str(shape[axis])
        v["inner"] = str(numel(shape[axis + 1 :]))


def _approximate(t: TracedNode, a: dict, v: dict, f: dict) -> None:
    if "approximate" in a:
        f["tanh_approximation"] = a["approximate"] == "tanh"


_EXPANDERS = (_window, _groups, _axis, _approximate)
