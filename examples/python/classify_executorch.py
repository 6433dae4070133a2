"""Embedding a lenetc model with ExecuTorch (PyTorch's on-device runtime), XNNPACK on the CPU.

    pip install executorch numpy
    python examples/python/classify_executorch.py build/lenet5

Loads model.pte, runs the golden inputs of io.npz and prints each sample's predicted class. The
labels and normalization come from train.json (model.pte carries only the network). On Android
the same file runs through org.pytorch.executorch.Module, on iOS through ExecuTorch's Swift API,
in C++ through executorch::extension::Module.
"""

import json
import sys

import numpy as np
import torch
from executorch.runtime import Runtime

build = sys.argv[1]
data = open(f"{build}/model.pte", "rb").read()
program = Runtime.get().load_program(data)  # keep program (and data) alive while running
method = program.load_method("forward")
# The memory plan holds up to export.executorch.max_batch samples (1024 by default).
capacity = method.metadata.input_tensor_meta(0).sizes()[0]

facts = json.load(open(f"{build}/train.json"))
labels = facts["labels"]
norm = facts["normalization"]
print(f"model.pte: batch 1 to {capacity}, normalized with mean {norm['mean']} std {norm['std']}")

golden = np.load(f"{build}/io.npz")  # inputs already normalized: (raw - mean[c]) / std[c]
x = golden["input"]
logits = np.concatenate(
    [
        method.execute([torch.from_numpy(x[i : i + capacity])])[0].numpy()
        for i in range(0, len(x), capacity)
    ]
)
for i, row in enumerate(logits):
    print(f"sample {i}: {labels[int(row.argmax())]}")
print(f"max |logits - io.npz output| = {np.abs(logits - golden['output']).max():.2e}")
