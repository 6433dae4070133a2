"""Runtime onnx.reference: onnx.reference.ReferenceEvaluator, the ONNX spec's semantics in numpy."""

from __future__ import annotations

import numpy as np

from .base import Observed, RuntimeProblem, first_line
from .onnx_model import OnnxModelRuntime
from .registry import RuntimeKind, register


class OnnxReference(OnnxModelRuntime):
    """onnx.reference.ReferenceEvaluator: the ONNX spec's own semantics, in numpy."""

    name = "onnx.reference"

    def load(self) -> None:
        super().load()
        from onnx.reference import ReferenceEvaluator

        try:
            self.evaluator = ReferenceEvaluator(self.model)
        except Exception as exc:
            raise RuntimeProblem(f"ReferenceEvaluator failed: {first_line(exc)}") from exc

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        return list(self.evaluator.run(None, {self.input_name: x}))

    def observe(self, x: np.ndarray) -> Observed:
        values = self.evaluator.run(None, {self.input_name: x}, intermediate=True)
        labels = [o for node in self.model.graph.node for o in node.output if o]
        return [(name, np.asarray(values[name])) for name in labels if name in values]


register(RuntimeKind("onnx.reference", 50, lambda t: [OnnxReference(t.out, t.spec)]))
