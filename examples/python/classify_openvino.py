"""Embedding a lenetc model with OpenVINO on the CPU, in float32.

    pip install openvino numpy
    python examples/python/classify_openvino.py build/lenet5

Loads model.onnx, reads how to feed it from its metadata, runs the golden inputs of io.npz and
prints each sample's predicted class.

Mind the precision: on CPUs with AMX (recent Xeons) OpenVINO computes in bfloat16 unless told
otherwise, about 1e-2 off on a LeNet's logits. INFERENCE_PRECISION_HINT f32 keeps float32; lenetc
verify shows both (rows openvino[cpu] and openvino[cpu,f32]).
"""

import json
import sys

import numpy as np
import openvino as ov

build = sys.argv[1]
core = ov.Core()
model = core.read_model(f"{build}/model.onnx")
compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


def meta(key: str) -> str:  # OpenVINO keeps ONNX metadata_props under rt_info["framework"]
    return model.get_rt_info(["framework", key]).astype(str)


labels = json.loads(meta("class_labels"))
print(f"{meta('spec_name')}: input {meta('input_name')} {meta('input_shape')}, normalized with")
print(f"  mean {meta('normalization_mean')} std {meta('normalization_std')}")

golden = np.load(f"{build}/io.npz")  # inputs already normalized: (raw - mean[c]) / std[c]
logits = compiled(golden["input"])[compiled.outputs[0]]
for i, row in enumerate(logits):
    print(f"sample {i}: {labels[int(row.argmax())]}")
print(f"max |logits - io.npz output| = {np.abs(logits - golden['output']).max():.2e}")
