"""Embedding a lenetc model with OpenCV's DNN module, on the CPU.

    pip install opencv-python-headless onnx numpy
    python examples/python/classify_opencv.py build/lenet5

Loads model.onnx with cv2.dnn.readNetFromONNX, runs the golden inputs of io.npz and prints each
sample's predicted class. In C++ the same steps are cv::dnn::readNetFromONNX(path),
net.setInput(blob), net.forward(). For a raw image, cv2.dnn.blobFromImage(image, 1 / 255) gives
the (1, C, H, W) blob; subtract the metadata's mean and divide by its std as below.
"""

import json
import sys

import cv2
import numpy as np
import onnx

build = sys.argv[1]
net = cv2.dnn.readNetFromONNX(f"{build}/model.onnx")
# OpenCV does not expose metadata_props: read them with onnx.
meta = {p.key: p.value for p in onnx.load(f"{build}/model.onnx").metadata_props}
labels = json.loads(meta["class_labels"])
print(f"{meta['spec_name']}: input {meta['input_name']} {meta['input_shape']}, normalized with")
print(f"  mean {meta['normalization_mean']} std {meta['normalization_std']}")

golden = np.load(f"{build}/io.npz")  # inputs already normalized: (raw - mean[c]) / std[c]
net.setInput(golden["input"])
logits = net.forward()
for i, row in enumerate(logits):
    print(f"sample {i}: {labels[int(row.argmax())]}")
print(f"max |logits - io.npz output| = {np.abs(logits - golden['output']).max():.2e}")
