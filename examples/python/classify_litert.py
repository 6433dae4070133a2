"""Embedding a lenetc model with LiteRT (TensorFlow Lite), on the CPU.

    pip install ai-edge-litert numpy
    python examples/python/classify_litert.py build/lenet5

Loads model.tflite, runs the golden inputs of io.npz one sample at a time (the model is converted
at batch 1, as a phone app runs it) and prints each sample's predicted class. The labels and
normalization come from train.json. The input layout is torch's, (1, C, H, W). On Android the
same file runs through org.tensorflow.lite.Interpreter (or LiteRT's CompiledModel).
"""

import json
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter

build = sys.argv[1]
interpreter = Interpreter(model_path=f"{build}/model.tflite")  # XNNPACK delegate by default
interpreter.allocate_tensors()
(inp,) = interpreter.get_input_details()
(out,) = interpreter.get_output_details()

facts = json.load(open(f"{build}/train.json"))
labels = facts["labels"]
norm = facts["normalization"]
print(f"model.tflite: input {inp['shape'].tolist()}")
print(f"  normalized with mean {norm['mean']} std {norm['std']}")

golden = np.load(f"{build}/io.npz")  # inputs already normalized: (raw - mean[c]) / std[c]
rows = []
for sample in golden["input"]:
    interpreter.set_tensor(inp["index"], sample[None])
    interpreter.invoke()
    rows.append(interpreter.get_tensor(out["index"])[0].copy())
logits = np.stack(rows)
for i, row in enumerate(logits):
    print(f"sample {i}: {labels[int(row.argmax())]}")
print(f"max |logits - io.npz output| = {np.abs(logits - golden['output']).max():.2e}")
