"""Quantize (parameters): model.int8.onnx + the spec's trace -> each spec layer's quantization.

Takes the QDQ model onnxruntime.quantization wrote and the ShapeTrace; returns a QuantModel: per
spec layer, the ONNX tensor that holds its output (a convolution's output is the tensor of the
batch norm folded into it and of the ReLU fused into its requantization), that tensor's scale
and zero point (None where the tensor stays float, as a ReduceMean before a Flatten does), and for
conv2d / linear the int8 weights, their per-channel scales and the int32 bias exactly as stored.
The walk follows the spec's layers and `inputs` and finds each one's ONNX node among the readers
of its input (a weighted layer by its weight's name); what it cannot find is a RuntimeFailure
naming the layer. No torch import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..check.shapes import ShapeTrace
from ..errors import RuntimeFailure
from ..spec.load import INPUT

# The ONNX operators torch's exporter writes for each quantizable kind (support.py lists them).
OPS = {
    "conv2d": ("Conv",),
    "linear": ("Gemm", "MatMul"),
    "relu": ("Relu",),
    "batch_norm2d": ("Conv",),  # not folded into a conv before it: batchnorm.py's depthwise conv
    "dropout": ("Dropout", "Identity"),
    "flatten": ("Reshape", "Flatten"),
    "max_pool2d": ("MaxPool",),
    "avg_pool2d": ("AveragePool",),
    "adaptive_avg_pool2d": ("ReduceMean", "GlobalAveragePool", "AveragePool"),
    "add": ("Add",),
    "cat": ("Concat",),
}
# Kinds the quantizer may fold away or fuse into the requantization of the layer before: when
# no node of theirs reads the input, their output is the input's tensor.
MAY_VANISH = ("relu", "batch_norm2d", "dropout")
# Kinds whose output is their input's values rearranged: a float output takes the quantization
# of the tensor they lead to.
SHAPE_ONLY = ("flatten", "dropout")


@dataclass(frozen=True)
class QParams:
    scale: float
    zero_point: int


@dataclass
class LayerQuant:
    name: str
    type: str
    tensor: str  # the float ONNX tensor holding this layer's output
    out: QParams | None  # None: the tensor stays float in model.int8.onnx
    weight: np.ndarray | None = None  # int8, torch's layout (out, in/groups, kh, kw) / (out, in)
    weight_scale: np.ndarray | None = None  # float32, one per output channel
    bias: np.ndarray | None = None  # int32, scale input_scale * weight_scale
    weight_name: str = ""


@dataclass
class QuantModel:
    trace: ShapeTrace
    input: QParams
    layers: dict[str, LayerQuant] = field(default_factory=dict)

    @property
    def output(self) -> LayerQuant:
        return self.layers[self.trace.spec.output]


class _Graph:
    """model.int8.onnx's nodes, readers of each tensor and its initializers."""

    def __init__(self, model) -> None:
        from onnx import numpy_helper

        self.init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self.nodes = list(model.graph.node)
        self.readers: dict[str, list] = {}
        self.producer = {}
        for n in self.nodes:
            for i in n.input:
                self.readers.setdefault(i, []).append(n)
            for o in n.output:
                self.producer[o] = n

    def qparams(self, tensor: str) -> QParams | None:
        for n in self.readers.get(tensor, []):
            if n.op_type == "QuantizeLinear":
                scale = self.init[n.input[1]]
                zp = self.init[n.input[2]] if len(n.input) > 2 else np.zeros((), np.int8)
                if zp.dtype != np.int8:
                    raise RuntimeFailure(
                        f"model.int8.onnx: {tensor} is quantized to {zp.dtype}, expected int8"
                    )
                return QParams(float(np.float32(scale)), int(zp))
        return None

    def value_readers(self, tensor: str) -> list:
        """The nodes reading the tensor's value: directly, or through its QuantizeLinear and the
        DequantizeLinear after it."""
        found = []
        for n in self.readers.get(tensor, []):
            if n.op_type == "QuantizeLinear":
                for d in self.readers.get(n.output[0], []):
                    if d.op_type == "DequantizeLinear":
                        found += self.readers.get(d.output[0], [])
            else:
                found.append(n)
        return found

    def dequantized(self, tensor: str, what: str) -> tuple[np.ndarray, np.ndarray]:
        """A weight or bias input of a node: its DequantizeLinear's stored integers and scales."""
        dq = self.producer.get(tensor)
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in self.init:
            raise RuntimeFailure(f"model.int8.onnx: the {what} {tensor} is not quantized")
        return self.init[dq.input[0]], np.asarray(self.init[dq.input[1]], np.float32)


def load_quant_model(path: Path, trace: ShapeTrace) -> QuantModel:
    """model.int8.onnx read against the spec: the parameters the integer reference runs on."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise RuntimeFailure(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    g = _Graph(model)
    first = model.graph.input[0].name
    inp = g.qparams(first)
    if inp is None:
        raise RuntimeFailure(f"{path}: its input {first} is not quantized")
    qm = QuantModel(trace, inp)
    tensor = {INPUT: first}
    claimed: set[int] = set()
    for t in trace.nodes:
        node = t.node
        srcs = [tensor[i] for i in node.inputs]
        found = _find(g, node, srcs, claimed)
        if found is None and node.type not in MAY_VANISH:
            raise RuntimeFailure(
                f"{path}: no {'/'.join(OPS.get(node.type, (node.type,)))} node for layer "
                f"{node.label} (line {node.line}); rebuild with --int8"
            )
        name = found.output[0] if found is not None else srcs[0]
        tensor[node.name] = name
        lq = LayerQuant(node.name, node.type, name, g.qparams(name))
        if found is not None and node.type in ("conv2d", "linear", "batch_norm2d"):
            lq.weight_name = found.input[1]
            w, ws = g.dequantized(found.input[1], "weight")
            if node.type == "linear" and found.op_type == "Gemm" and not _trans_b(found):
                w = w.T
            lq.weight, lq.weight_scale = w.astype(np.int8), ws.reshape(-1)
            if len(found.input) > 2 and found.input[2]:
                b, _ = g.dequantized(found.input[2], "bias")
                lq.bias = b.astype(np.int32)
        qm.layers[node.name] = lq
    _shape_only_params(qm, trace)
    return qm


def _find(g: _Graph, node, srcs: list[str], claimed: set[int]):
    ops = OPS.get(node.type)
    if ops is None:
        return None
    for n in g.value_readers(srcs[0]):
        if n.op_type not in ops or id(n) in claimed:
            continue
        weighted = node.type in ("conv2d", "linear", "batch_norm2d")
        if weighted and not n.input[1].startswith(f"{node.name}."):
            continue
        if len(srcs) > 1 and not all(_reads(g, n, s) for s in srcs[1:]):
            continue
        claimed.add(id(n))
        return n
    return None


def _reads(g: _Graph, n, tensor: str) -> bool:
    return any(r is n for r in g.value_readers(tensor))


def _trans_b(node) -> bool:
    return any(a.name == "transB" and a.i == 1 for a in node.attribute)


def _shape_only_params(qm: QuantModel, trace: ShapeTrace) -> None:
    """A float tensor read only by a flatten / dropout takes the quantization that one gets
    (torch exports adaptive_avg_pool2d + flatten as ReduceMean + Reshape, quantized after both)."""
    readers = trace.readers()
    for t in reversed(trace.nodes):
        lq = qm.layers[t.node.name]
        if lq.out is not None:
            continue
        after = readers.get(t.node.name, [])
        if len(after) == 1 and qm.layers[after[0]].type in SHAPE_ONLY:
            lq.out = qm.layers[after[0]].out
