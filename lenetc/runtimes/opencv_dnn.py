"""Runtime opencv-dnn: model.onnx in OpenCV's DNN module (`cv2.dnn.readNetFromONNX`) on the CPU.

What robotics and vision code that already links OpenCV embeds (`cv::dnn::readNetFromONNX` in
C++); here the opencv-python-headless wheel, the same library. OpenCV reads the ONNX graph into
its own layers, so this row also proves the file for a runtime that is not ONNX Runtime.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from .base import RuntimeProblem, first_line
from .onnx_model import OnnxModelRuntime
from .registry import RuntimeKind, register

INSTALL = "pip install 'lenetc[runtimes]' (or: pip install opencv-python-headless)"


class OpenCvDnn(OnnxModelRuntime):
    name = "opencv-dnn"

    def unavailable(self) -> str | None:
        if importlib.util.find_spec("cv2") is None:
            return f"the cv2 Python package (OpenCV) is not installed; install: {INSTALL}"
        return None

    def load(self) -> None:
        super().load()
        try:
            import cv2

            self.net = _read(self.model.SerializeToString())
        except Exception as exc:  # a broken install, a graph OpenCV cannot read
            raise RuntimeProblem(f"OpenCV could not load the model: {first_line(exc)}") from exc
        if self.threads:
            cv2.setNumThreads(self.threads)

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        self.net.setInput(np.ascontiguousarray(x))
        return [np.asarray(self.net.forward()).copy()]

    def run_observable(self, model, x: np.ndarray) -> dict[str, np.ndarray]:
        net = _read(model.SerializeToString())
        names = list(net.getUnconnectedOutLayersNames())  # the graph outputs, by tensor name
        net.setInput(np.ascontiguousarray(x))
        return dict(zip(names, (np.asarray(v).copy() for v in net.forward(names))))


def _read(model_bytes: bytes):
    import cv2

    return cv2.dnn.readNetFromONNX(np.frombuffer(model_bytes, np.uint8))


register(RuntimeKind("opencv-dnn", 75, lambda t: [OpenCvDnn(t.out, t.spec)]))
