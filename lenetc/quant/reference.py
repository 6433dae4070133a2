"""Quantize (reference): the integer forward pass, in numpy, from the spec and model.int8.onnx.

Takes a QuantModel (params.py) and a float32 batch; returns the dequantized output and, per spec
layer, its int8 values and parameters (for SQNR and for locating a mismatch). This is the oracle
of the int8 rows: the C target's int8 variant equals it exactly; ONNX runtimes on model.int8.onnx
are compared with it in quantization steps of the output.

The arithmetic is TFLite's integer reference: the input quantized as QuantizeLinear does (x / s,
round half to even, saturated); conv2d / linear accumulate (q - zx) * w + bias in int32 and
requantize with a per-channel fixed-point multiplier (fixed.py); max pooling and flatten work on
the int8 values; average pooling sums in int32 and requantizes by s_in / (s_out * count); add
rescales both operands by 2**20 as TFLite's add does; cat requantizes each operand whose
parameters differ from the output's. A ReLU fused into the layer before is its zero point at
-128 (the clamp is the ReLU).

`rounding="float"` computes the same network the way ONNX Runtime's fused kernels do: each
requantization multiplies the int32 accumulator by a float32 scale (s_x * s_w / s_y) and rounds
half to even; a rescale, a cat, an average and an add go through float32 values (QLinearAdd's
scale ratios). A one-step difference in one layer can grow to several steps at the output of a
deep network where a layer's gain exceeds 1 (a batch norm), so verify compares ONNX runtimes with
this mode and the C variant with the fixed-point one, each expected exact.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np

from .fixed import multiply_by_quantized_multiplier, quantized_multiplier
from .params import LayerQuant, QParams, QuantModel

QMIN, QMAX = -128, 127
ADD_LEFT_SHIFT = 20  # TFLite's add: operands scaled up by 2**20 before rescaling
ROUNDINGS = ("fixed", "float")
_ROUNDING: ContextVar[str] = ContextVar("rounding", default="fixed")
F32 = np.float32


@dataclass
class Value:
    """A layer's output: int8 values (in int64) with their parameters, or float32 values."""

    q: np.ndarray | None
    params: QParams | None
    f: np.ndarray | None = None

    def real(self) -> np.ndarray:
        if self.q is None:
            return self.f
        s, z = np.float32(self.params.scale), np.float32(self.params.zero_point)
        return (self.q.astype(np.float32) - z) * s  # DequantizeLinear, in float32


def quantize(x: np.ndarray, p: QParams) -> np.ndarray:
    """QuantizeLinear: x / scale in float32, rounded half to even, + zero point, saturated."""
    y = np.rint(np.asarray(x, np.float32) / np.float32(p.scale)).astype(np.int64)
    return np.clip(y + p.zero_point, QMIN, QMAX)


def requantize_multipliers(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel real multipliers (float64) -> (m0, shift) arrays, as the C target stores them."""
    pairs = [quantized_multiplier(float(m)) for m in np.atleast_1d(real)]
    return np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64)


def conv_multipliers(lq: LayerQuant, x: QParams) -> tuple[np.ndarray, np.ndarray]:
    """conv2d / linear: M_c = s_x * s_w[c] / s_out (float64 of the stored float32 scales)."""
    real = np.float64(x.scale) * lq.weight_scale.astype(np.float64) / np.float64(lq.out.scale)
    return requantize_multipliers(real)


def integer_forward(
    qm: QuantModel, x: np.ndarray, rounding: str = "fixed"
) -> tuple[np.ndarray, dict[str, Value]]:
    """The int8 network on a float32 batch: (its dequantized output, every layer's Value);
    rounding "fixed" (gemmlowp, the C variant's) or "float" (ONNX Runtime's)."""
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding is one of {ROUNDINGS}, not {rounding!r}")
    token = _ROUNDING.set(rounding)
    try:
        values: dict[str, Value] = {"input": Value(quantize(x, qm.input), qm.input)}
        for t in qm.trace.nodes:
            node = t.node
            ins = [values[i] for i in node.inputs]
            values[node.name] = _LAYERS[node.type](qm.layers[node.name], t, ins)
    finally:
        _ROUNDING.reset(token)
    return values[qm.trace.spec.output].real(), values


def _fixed() -> bool:
    return _ROUNDING.get() == "fixed"


def _round(v: np.ndarray) -> np.ndarray:
    """float32 values rounded half to even, as int64 (saturated far outside int8 first)."""
    return np.rint(np.clip(v, -1e9, 1e9)).astype(np.int64)


def _clamp(q: np.ndarray) -> np.ndarray:
    return np.clip(q, QMIN, QMAX)


def _requant(q: np.ndarray, src: QParams, dst: QParams) -> np.ndarray:
    """int8 values from one (scale, zero point) to another, in fixed point."""
    if src == dst:
        return q
    if not _fixed():  # DequantizeLinear, then QuantizeLinear, in float32
        real = (q - src.zero_point).astype(F32) * F32(src.scale)
        return _clamp(_round(real / F32(dst.scale)) + dst.zero_point)
    m0, shift = quantized_multiplier(src.scale / dst.scale)
    return _clamp(dst.zero_point + multiply_by_quantized_multiplier(q - src.zero_point, m0, shift))


def _out(lq: LayerQuant, acc: np.ndarray, m0, shift, real_scale, x: QParams) -> Value:
    if lq.out is None:  # a float tensor in model.int8.onnx: dequantize the accumulator
        return Value(None, None, (acc * real_scale).astype(np.float32))
    if _fixed():
        q = multiply_by_quantized_multiplier(acc, m0, shift)
    else:  # float32(acc) * float32(s_x * s_w / s_y), each product rounded to float32
        scale = (F32(x.scale) * lq.weight_scale.astype(F32)) / F32(lq.out.scale)
        q = _round(acc.astype(F32) * scale.reshape(np.shape(m0)).astype(F32))
    return Value(_clamp(q + lq.out.zero_point), lq.out)


def _windows(size: int, out: int, k: int, stride: int, pad: int) -> list[tuple[int, int, int]]:
    """Per output index: (start, end) inside the input, and the window's size with padding."""
    spans = []
    for o in range(out):
        start = o * stride - pad
        end = min(start + k, size + pad)
        padded = end - start
        spans.append((max(start, 0), min(end, size), padded))
    return spans


def _conv2d(lq: LayerQuant, t, ins: list[Value]) -> Value:
    return _convolve(lq, t, ins, t.node.args)


def _batch_norm2d(lq: LayerQuant, t, ins: list[Value]) -> Value:
    """Folded into the conv before it (the same values), or a depthwise 1x1 conv of its own."""
    if lq.weight is None:
        return ins[0]
    return _convolve(lq, t, ins, DEPTHWISE | {"groups": t.out_shape[0]})


DEPTHWISE = {"kernel_size": (1, 1), "stride": (1, 1), "dilation": (1, 1), "padding": (0, 0)}


def _convolve(lq: LayerQuant, t, ins: list[Value], a: dict) -> Value:
    x = ins[0]
    kh, kw = a["kernel_size"]
    sh, sw = a["stride"]
    dh, dw = a["dilation"]
    groups = a["groups"]
    c_out, oh, ow = t.out_shape
    n, c_in, h, w = x.q.shape
    pad = a["padding"]
    if pad == "same":  # torch: the extra pixel of an odd total goes to the bottom / right
        th, tw = dh * (kh - 1), dw * (kw - 1)
        top, left = th // 2, tw // 2
    elif pad == "valid":
        top = left = 0
    else:
        top, left = pad
    xs = x.q - x.params.zero_point  # the zero point is real 0: pad with 0 after subtracting it
    big = np.zeros((n, c_in, h + 2 * top + kh * dh, w + 2 * left + kw * dw), np.int64)
    big[:, :, top : top + h, left : left + w] = xs
    acc = np.zeros((n, c_out, oh, ow), np.int64)
    per_in, per_out = c_in // groups, c_out // groups
    wq = lq.weight.astype(np.int64)
    for g in range(groups):
        xg = big[:, g * per_in : (g + 1) * per_in]
        wg = wq[g * per_out : (g + 1) * per_out]
        for ky in range(kh):
            for kx in range(kw):
                ys, xs0 = ky * dh, kx * dw
                patch = xg[:, :, ys : ys + sh * oh : sh, xs0 : xs0 + sw * ow : sw]
                acc[:, g * per_out : (g + 1) * per_out] += np.einsum(
                    "nchw,oc->nohw", patch, wg[:, :, ky, kx]
                )
    if lq.bias is not None:
        acc += lq.bias.astype(np.int64)[None, :, None, None]
    if lq.out is None:
        real = (x.params.scale * lq.weight_scale)[None, :, None, None]
        return _out(lq, acc, 0, 0, real, x.params)
    m0, shift = conv_multipliers(lq, x.params)
    return _out(lq, acc, m0[None, :, None, None], shift[None, :, None, None], None, x.params)


def _linear(lq: LayerQuant, t, ins: list[Value]) -> Value:
    x = ins[0]
    acc = (x.q - x.params.zero_point) @ lq.weight.astype(np.int64).T
    if lq.bias is not None:
        acc = acc + lq.bias.astype(np.int64)
    if lq.out is None:
        return _out(lq, acc, 0, 0, x.params.scale * lq.weight_scale, x.params)
    m0, shift = conv_multipliers(lq, x.params)
    return _out(lq, acc, m0, shift, None, x.params)


def _same(lq: LayerQuant, t, ins: list[Value]) -> Value:
    """dropout: the layer before's values (and tensor)."""
    return ins[0]


def _relu(lq: LayerQuant, t, ins: list[Value]) -> Value:
    x = ins[0]
    if x.q is None:
        return Value(None, None, np.maximum(x.f, 0).astype(np.float32))
    q = np.maximum(x.q, x.params.zero_point)
    return Value(_requant(q, x.params, lq.out), lq.out) if lq.out else Value(q, x.params)


def _flatten(lq: LayerQuant, t, ins: list[Value]) -> Value:
    x = ins[0]
    n = len(x.q if x.q is not None else x.f)
    if x.q is None:
        f = x.f.reshape(n, -1)
        return Value(quantize(f, lq.out), lq.out) if lq.out else Value(None, None, f)
    q = x.q.reshape(n, -1)
    return Value(_requant(q, x.params, lq.out), lq.out) if lq.out else Value(q, x.params)


def _max_pool2d(lq: LayerQuant, t, ins: list[Value]) -> Value:
    x = ins[0]
    a = t.node.args
    kh, kw = a["kernel_size"]
    sh, sw = a["stride"] or a["kernel_size"]
    ph, pw = a["padding"]
    dh, dw = a["dilation"]
    c, oh, ow = t.out_shape
    n, _, h, w = x.q.shape
    out = np.full((n, c, oh, ow), QMIN - 1, np.int64)
    for oy in range(oh):
        for ox in range(ow):
            for ky in range(kh):
                iy = oy * sh - ph + ky * dh
                if not 0 <= iy < h:
                    continue
                for kx in range(kw):
                    ix = ox * sw - pw + kx * dw
                    if 0 <= ix < w:
                        out[:, :, oy, ox] = np.maximum(out[:, :, oy, ox], x.q[:, :, iy, ix])
    return Value(_requant(out, x.params, lq.out or x.params), lq.out or x.params)


def _avg(lq: LayerQuant, x: Value, rows, cols, include_pad: bool) -> Value:
    n, c = x.q.shape[:2]
    xs = x.q - x.params.zero_point
    out_q = np.zeros((n, c, len(rows), len(cols)), np.int64)
    for oy, (y0, y1, ph) in enumerate(rows):
        for ox, (x0, x1, pw) in enumerate(cols):
            total = xs[:, :, y0:y1, x0:x1].sum(axis=(2, 3))
            count = ph * pw if include_pad else (y1 - y0) * (x1 - x0)
            if lq.out is None:
                out_q[:, :, oy, ox] = 0  # filled below as float
                continue
            if _fixed():
                m0, shift = quantized_multiplier(x.params.scale / (lq.out.scale * count))
                q = multiply_by_quantized_multiplier(total, m0, shift)
            else:  # the mean of the dequantized values, in float32, quantized
                real = xs[:, :, y0:y1, x0:x1].astype(F32) * F32(x.params.scale)
                mean = real.sum(axis=(2, 3), dtype=F32) / F32(count)
                q = _round(mean / F32(lq.out.scale))
            out_q[:, :, oy, ox] = _clamp(q + lq.out.zero_point)
    if lq.out is None:
        raise ValueError(f"layer {lq.name}: an average pool with a float output")
    return Value(out_q, lq.out)


def _avg_pool2d(lq: LayerQuant, t, ins: list[Value]) -> Value:
    a = t.node.args
    kh, kw = a["kernel_size"]
    sh, sw = a["stride"] or a["kernel_size"]
    ph, pw = a["padding"]
    _, oh, ow = t.out_shape
    h, w = ins[0].q.shape[2:]
    rows, cols = _windows(h, oh, kh, sh, ph), _windows(w, ow, kw, sw, pw)
    return _avg(lq, ins[0], rows, cols, a.get("count_include_pad", True))


def _adaptive_avg_pool2d(lq: LayerQuant, t, ins: list[Value]) -> Value:
    _, oh, ow = t.out_shape
    h, w = ins[0].q.shape[2:]

    def spans(size: int, out: int):  # torch: floor(i * in / out) to ceil((i + 1) * in / out)
        return [(i * size // out, -(-(i + 1) * size // out), 0) for i in range(out)]

    return _avg(lq, ins[0], spans(h, oh), spans(w, ow), False)


def _add(lq: LayerQuant, t, ins: list[Value]) -> Value:
    a, b = ins
    if not _fixed():  # QLinearAdd: s_a / s_c * (a - z_a) + s_b / s_c * (b - z_b), float32
        ra, rb = F32(a.params.scale) / F32(lq.out.scale), F32(b.params.scale) / F32(lq.out.scale)
        v = ra * (a.q - a.params.zero_point).astype(F32) + rb * (b.q - b.params.zero_point).astype(
            F32
        )
        return Value(_clamp(_round(v) + lq.out.zero_point), lq.out)
    twice_max = 2 * max(a.params.scale, b.params.scale)
    total = np.zeros(np.broadcast_shapes(a.q.shape, b.q.shape), np.int64)
    for v in (a, b):
        m0, shift = quantized_multiplier(v.params.scale / twice_max)
        shifted = (v.q - v.params.zero_point) << ADD_LEFT_SHIFT
        total = total + multiply_by_quantized_multiplier(shifted, m0, shift)
    m0, shift = quantized_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * lq.out.scale))
    return Value(
        _clamp(multiply_by_quantized_multiplier(total, m0, shift) + lq.out.zero_point), lq.out
    )


def _cat(lq: LayerQuant, t, ins: list[Value]) -> Value:
    axis = t.node.args.get("dim", 1)
    parts = [_requant(v.q, v.params, lq.out) for v in ins]
    return Value(np.concatenate(parts, axis=axis), lq.out)


_LAYERS = {
    "conv2d": _conv2d,
    "linear": _linear,
    "relu": _relu,
    "batch_norm2d": _batch_norm2d,
    "dropout": _same,
    "flatten": _flatten,
    "max_pool2d": _max_pool2d,
    "avg_pool2d": _avg_pool2d,
    "adaptive_avg_pool2d": _adaptive_avg_pool2d,
    "add": _add,
    "cat": _cat,
}
