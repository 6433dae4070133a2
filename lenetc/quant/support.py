"""Quantize (support): a Spec asked to be int8 -> nothing, or a located SpecError (exit 2).

Takes the spec (and how int8 was asked: the quantize: section or --int8); refuses, before any
training, what the int8 path does not compute: layers whose function is not piecewise linear
(tanh, sigmoid, gelu, softmax, log_softmax, leaky_relu) are refused rather than kept in float
between DequantizeLinear and QuantizeLinear, because the C target's int8 variant has no float
inner loop to keep them in and a float island would make the integer reference two programs;
and a spec with no conv2d or linear at all. (A batch norm is folded into the conv2d before it,
or becomes a depthwise 1x1 convolution: batchnorm.py.) No torch import.
"""

from __future__ import annotations

from ..errors import Location, Problem, SpecError
from ..spec.load import Spec
from .params import OPS

WEIGHTED = ("conv2d", "linear")


def require_quantizable(spec: Spec, asked_by: str) -> None:
    if spec.quantize is None:
        return
    problems = []
    where = spec.quantize.line
    for node in spec.nodes:
        if node.type not in OPS:
            problems.append(
                Problem(
                    f"{asked_by}: int8 has no integer kernel for {node.type}; expected conv2d, "
                    f"linear, batch_norm2d, relu, pooling, flatten, dropout, add or cat",
                    Location(spec.path, node.line),
                    node.label,
                    hint=f"replace {node.type} with relu (a classifier's softmax belongs in its "
                    "loss), or build without int8",
                )
            )
    if not any(n.type in WEIGHTED for n in spec.nodes):
        problems.append(
            Problem(
                f"{asked_by}: int8 quantizes conv2d and linear weights, and {spec.name} has none",
                Location(spec.path, where),
                hint="remove quantize: (or --int8): there is nothing to quantize",
            )
        )
    if problems:
        raise SpecError(problems)
