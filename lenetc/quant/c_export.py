"""Quantize (C): a QuantModel -> c/model_int8.c and c/model_int8_weights.h in the build folder.

Takes the QuantModel read from model.int8.onnx (params.py); turns each spec layer into the plain
numbers the int8 C target prints (targets/c/int8.py: sizes, zero points, the stored int8 weights
and int32 biases, the per-channel multipliers and shifts of reference.py, the same values), and
writes the files. Returns None, or why this spec has no int8 C variant (a graph).
"""

from __future__ import annotations

import numpy as np

from ..artifacts import BuildDir, write_text
from ..targets.c.int8 import Int8Layer, render_int8, unsupported
from .fixed import quantized_multiplier
from .params import QuantModel
from .reference import DEPTHWISE, conv_multipliers


def write_c_int8(out: BuildDir, qm: QuantModel) -> str | None:
    why = unsupported(qm.trace)
    if why is not None:
        return why
    for name, text in render_c_int8(qm).items():
        write_text(out.c_dir / name, text)
    return None


def render_c_int8(qm: QuantModel) -> dict[str, str]:
    """model_int8.c and model_int8_weights.h as text, for a chain spec (see `unsupported`)."""
    layers, arena = [], int(np.prod(qm.trace.spec.input_shape))
    params = qm.input
    for t in qm.trace.nodes:
        lq, a = qm.layers[t.node.name], t.node.args
        arena = max(arena, int(np.prod(t.out_shape)))
        out_p = lq.out or params
        weighted = lq.weight is not None  # conv2d, linear, a batch norm no conv absorbed
        if weighted:
            m0, shift = conv_multipliers(lq, params)
            arrays = [("w", "int8_t", lq.weight), ("m0", "int32_t", m0), ("shift", "int8_t", shift)]
            if lq.bias is not None:
                arrays.insert(1, ("b", "int32_t", lq.bias))
            if t.node.type == "linear":
                call = {"in": t.in_shape[0], "out": t.out_shape[0]}
            elif t.node.type == "batch_norm2d":  # batchnorm.py's depthwise 1x1 convolution
                call = _conv_call(t, DEPTHWISE | {"groups": t.out_shape[0]})
            else:
                call = _conv_call(t, a)
            call.update(zx=params.zero_point, zy=out_p.zero_point)
            kind = "linear" if t.node.type == "linear" else "conv2d"
            if (
                kind == "conv2d"
                and call["ci"] // call["groups"] * call["kh"] * call["kw"] > call["ow"]
            ):
                kind = "conv2d_patches"  # a window longer than an output row: dot products
            layers.append(Int8Layer(t.node.name, kind, call, tuple(arrays)))
        elif t.node.type == "max_pool2d":
            c, h, w = t.in_shape
            _, oh, ow = t.out_shape
            kh, kw = a["kernel_size"]
            sy, sx = a["stride"] or a["kernel_size"]
            py, px = a["padding"]
            dy, dx = a["dilation"]
            call = dict(
                c=c, h=h, wd=w, oh=oh, ow=ow, kh=kh, kw=kw, sy=sy, sx=sx, py=py, px=px, dy=dy, dx=dx
            )
            layers.append(Int8Layer(t.node.name, "max_pool2d", call))
        elif t.node.type == "relu" and params.zero_point == -128:
            pass  # fused: the requantization's clamp at -128 already is the ReLU
        elif t.node.type == "relu":
            n = int(np.prod(t.out_shape))
            layers.append(Int8Layer(t.node.name, "relu", {"n": n, "zx": params.zero_point}))
        else:
            layers.append(Int8Layer(t.node.name, t.node.type, {}))
        if out_p != params and not weighted:
            m0, shift = quantized_multiplier(params.scale / out_p.scale)
            call = {
                "n": int(np.prod(t.out_shape)),
                "zx": params.zero_point,
                "zy": out_p.zero_point,
                "m0": m0,
                "shift": shift,
            }
            layers.append(Int8Layer(f"{t.node.name}_rescale", "rescale", call))
        params = out_p
    io = {
        "in_scale": qm.input.scale,
        "in_zero": qm.input.zero_point,
        "out_scale": params.scale,
        "out_zero": params.zero_point,
    }
    return render_int8(qm.trace, layers, io, arena)


def _conv_call(t, a) -> dict:
    c, h, w = t.in_shape
    co, oh, ow = t.out_shape
    kh, kw = a["kernel_size"]
    dy, dx = a["dilation"]
    pad = a["padding"]
    if pad == "same":
        py, px = dy * (kh - 1) // 2, dx * (kw - 1) // 2
    elif pad == "valid":
        py = px = 0
    else:
        py, px = pad
    sy, sx = a["stride"]
    # the padded input: room for every window (the last one starts at (o - 1) * s, padded)
    need_h, need_w = (oh - 1) * sy + (kh - 1) * dy + 1, (ow - 1) * sx + (kw - 1) * dx + 1
    hp, wp = h, w
    if py or px or need_h > h or need_w > w:
        hp, wp = max(h + 2 * py, need_h), max(w + 2 * px, need_w)
    return dict(
        hp=hp,
        wp=wp,
        ci=c,
        h=h,
        wd=w,
        co=co,
        oh=oh,
        ow=ow,
        kh=kh,
        kw=kw,
        sy=sy,
        sx=sx,
        py=py,
        px=px,
        dy=dy,
        dx=dx,
        groups=a["groups"],
    )
