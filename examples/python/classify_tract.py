"""Embedding a lenetc model with tract (the Rust ONNX engine; here its Python wheel).

    pip install tract onnx numpy
    python examples/python/classify_tract.py build/lenet5

Loads model.onnx, reads how to feed it from its metadata, runs the golden inputs of io.npz and
prints each sample's predicted class. In Rust the same steps are tract_onnx::onnx()
.model_for_path(..)?.into_optimized()?.into_runnable()?.
"""

import json
import sys

import numpy as np
import onnx
import tract

build = sys.argv[1]
# tract keeps the batch axis symbolic ("N"): one plan runs every batch size.
plan = tract.onnx().load(f"{build}/model.onnx").into_model().into_runnable()
# tract's Python API cannot hand out string properties: read metadata_props with onnx instead
# (in Rust: model.properties["onnx.metadata_props.class_labels"]).
meta = {
    p.key: p.value
    for p in onnx.load(f"{build}/model.onnx", load_external_data=False).metadata_props
}
labels = json.loads(meta["class_labels"])
print(f"{meta['spec_name']}: input {meta['input_name']} {meta['input_shape']}, normalized with")
print(f"  mean {meta['normalization_mean']} std {meta['normalization_std']}")

golden = np.load(f"{build}/io.npz")  # inputs already normalized: (raw - mean[c]) / std[c]
logits = plan.run([golden["input"]])[0].to_numpy()
for i, row in enumerate(logits):
    print(f"sample {i}: {labels[int(row.argmax())]}")
print(f"max |logits - io.npz output| = {np.abs(logits - golden['output']).max():.2e}")
