"""Quantize (SQNR): per spec layer, how much signal survives int8, against the float model.

Takes the float model.onnx, a QuantModel and calibration samples; returns one LayerSqnr per spec
layer that owns a tensor (a ReLU fused into a convolution shares its row): 10 log10 of the float
output's power over the power of (int8 reference, dequantized) - float. The float values come
from ONNX Runtime on model.onnx with the layer's tensor made an output. `dominant` names the layer
that loses the most decibels relative to its input, when it loses more than half of all that is
lost, with what to try.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .params import QuantModel
from .reference import integer_forward

RENAMED = "_QuantizeLinear_Input"  # the quantizer's name for a graph output it quantizes
MIN_DB = 3.0  # below this, no layer is worth a hint


@dataclass
class LayerSqnr:
    layers: list[str]  # the spec layers computing this tensor (conv1, relu1)
    type: str
    line: int
    sqnr_db: float
    lost_db: float  # this layer's input SQNR minus its own (what it adds)


def layer_sqnr(float_onnx, qm: QuantModel, x: np.ndarray) -> list[LayerSqnr]:
    import onnx
    import onnxruntime as ort

    _, values = integer_forward(qm, x)
    model = onnx.load(str(float_onnx))
    rows: dict[str, LayerSqnr] = {}
    order: list[tuple[str, str]] = []  # (tensor in model.onnx, spec layer) per owned tensor
    for t in qm.trace.nodes:
        lq = qm.layers[t.node.name]
        tensor = lq.tensor.removesuffix(RENAMED)
        if tensor in rows:
            rows[tensor].layers.append(t.node.name)
            continue
        rows[tensor] = LayerSqnr([t.node.name], t.node.type, t.node.line, 0.0, 0.0)
        order.append((tensor, t.node.name))
    present = {o.name for o in model.graph.output}
    for tensor, _ in order:
        if tensor not in present:
            model.graph.output.append(onnx.ValueInfoProto(name=tensor))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options)
    names = [tensor for tensor, _ in order]
    got = dict(zip(names, session.run(names, {model.graph.input[0].name: x})))
    x_db = _db(x, values["input"].real())
    inputs = {"input": x_db}
    for tensor, layer in order:
        row = rows[tensor]
        mine = values[row.layers[-1]].real().reshape(got[tensor].shape)
        row.sqnr_db = _db(got[tensor], mine)
        node = next(t.node for t in qm.trace.nodes if t.node.name == layer)
        before = min(inputs.get(i, x_db) for i in node.inputs)
        row.lost_db = max(0.0, before - row.sqnr_db)
        for name in row.layers:
            inputs[name] = row.sqnr_db
    return [rows[t] for t, _ in order]


def _db(ref: np.ndarray, got: np.ndarray) -> float:
    ref = np.asarray(ref, np.float64)
    noise = float(np.sum((ref - np.asarray(got, np.float64)) ** 2))
    signal = float(np.sum(ref**2))
    if noise == 0:
        return float("inf")
    if signal == 0:
        return float("-inf")
    return round(10 * np.log10(signal / noise), 2)


def dominant(rows: list[LayerSqnr]) -> str | None:
    """A hint when one layer loses more than half of the decibels all layers lose."""
    total = sum(r.lost_db for r in rows if np.isfinite(r.lost_db))
    if not rows or total <= 0:
        return None
    worst = max(rows, key=lambda r: r.lost_db)
    if worst.lost_db <= total / 2 or worst.lost_db < MIN_DB:
        return None
    return (
        f"layer {worst.layers[0]} ({worst.type}, line {worst.line}) loses {worst.lost_db:.1f} of "
        f"the {total:.1f} dB all layers lose: try more calibration samples, "
        "quantize.calibration.method: percentile or entropy (outliers stretch min/max ranges); "
        "its weights are already per channel"
    )
