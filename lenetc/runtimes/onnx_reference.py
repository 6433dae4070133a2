"""Runtime onnx.reference: onnx.reference.ReferenceEvaluator, the ONNX spec's semantics in numpy."""

from __future__ import annotations

import numpy as np

from .base import RuntimeProblem, first_line
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

    def run_observable(self, model, x: np.ndarray) -> dict[str, np.ndarray]:
        # the evaluator keeps every intermediate itself: the observable copy is not needed
        values = self.evaluator.run(None, {self.input_name: x}, intermediate=True)
        return {name: np.asarray(value) for name, value in values.items()}


register(RuntimeKind("onnx.reference", 50, lambda t: [OnnxReference(t.out, t.spec)]))
