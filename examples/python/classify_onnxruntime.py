"""Embedding a lenetc model in Python with onnxruntime and numpy only (no torch, no lenetc).

    pip install onnxruntime numpy
    python examples/python/classify_onnxruntime.py build/lenet5

Loads model.onnx, reads how to feed it from its own metadata, runs the golden inputs of io.npz
and prints each sample's predicted class.
"""

import json
import sys

import numpy as np
import onnxruntime as ort

build = sys.argv[1]
session = ort.InferenceSession(f"{build}/model.onnx", providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map  # lenetc's metadata_props; lists are JSON
labels = json.loads(meta["class_labels"])
mean, std = json.loads(meta["normalization_mean"]), json.loads(meta["normalization_std"])
print(f"{meta['spec_name']}: input {meta['input_name']} {meta['input_shape']}, normalized with")
print(f"  mean {mean} std {std}")

# io.npz's inputs are already normalized. Raw samples (values in meta["input_range"]) first
# become (raw - mean[c]) / std[c]: reshape mean and std to (1, C, 1, 1), or (1, F) for flat input.
golden = np.load(f"{build}/io.npz")
logits = session.run([meta["output_name"]], {meta["input_name"]: golden["input"]})[0]
for i, row in enumerate(logits):
    print(f"sample {i}: {labels[int(row.argmax())]}")
print(f"max |logits - io.npz output| = {np.abs(logits - golden['output']).max():.2e}")
