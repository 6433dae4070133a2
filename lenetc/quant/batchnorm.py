"""Quantize (batch norm): a BatchNormalization no convolution absorbs -> a depthwise 1x1 Conv.

Takes the float ONNX model after onnxruntime's pre-processing (which folds a batch norm into the
convolution right before it); rewrites each remaining BatchNormalization over NCHW (after a cat,
a pool, the input) as the same per-channel affine map, y = a * x + b with a = gamma /
sqrt(var + eps) and b = beta - mean * a, written as a Conv with group = channels and a 1x1
kernel. Quantized like any convolution (one weight per channel, symmetric: a is exact at +-64
steps of its own scale; b an int32 bias), it runs on every runtime's integer kernels, in the
reference and in the C variant, where ONNX Runtime alone would keep batch norm in float between
DequantizeLinear and QuantizeLinear. Initializers are named `<layer>.weight_as_conv` /
`<layer>.bias_as_conv`, so params.py finds them by the spec layer's name. No torch import.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def batch_norm_as_conv(path: Path) -> int:
    """Rewrite the model at `path` in place; returns how many batch norms became convolutions."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    init = {t.name: t for t in graph.initializer}
    nodes, changed = [], 0
    for node in graph.node:
        if node.op_type != "BatchNormalization" or not all(i in init for i in node.input[1:5]):
            nodes.append(node)
            continue
        scale, bias, mean, var = (numpy_helper.to_array(init[i]) for i in node.input[1:5])
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        a = (scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)).astype(np.float32)
        b = (bias - mean * a).astype(np.float32)
        layer = node.input[1].rsplit(".", 1)[0]  # bn2.weight -> bn2
        w_name, b_name = f"{layer}.weight_as_conv", f"{layer}.bias_as_conv"
        graph.initializer.extend(
            [
                numpy_helper.from_array(a.reshape(-1, 1, 1, 1), w_name),
                numpy_helper.from_array(b, b_name),
            ]
        )
        conv = helper.make_node(
            "Conv",
            [node.input[0], w_name, b_name],
            [node.output[0]],
            name=f"{node.name}_as_conv",
            group=len(a),
            kernel_shape=[1, 1],
        )
        nodes.append(conv)
        changed += 1
    if changed:
        del graph.node[:]
        graph.node.extend(nodes)
        used = {i for n in graph.node for i in n.input}
        keep = [t for t in graph.initializer if t.name in used]
        del graph.initializer[:]
        graph.initializer.extend(keep)
        onnx.save(model, str(path))
    return changed
