"""Runtimes (ONNX): what ONNX Runtime and the ONNX reference evaluator share.

Loads model.onnx once, knows its input name and whether its batch axis is static, offers its
initializers as parameters, and observes every node's outputs: `observe` builds a copy of the
graph whose outputs are all of them and asks the adapter's `run_observable` to run it.
"""

from __future__ import annotations

import abc

import numpy as np

from .base import Observed, Runtime, RuntimeProblem, first_line


class OnnxModelRuntime(Runtime):
    artifact = "model.onnx"

    def load(self) -> None:
        super().load()
        import onnx

        try:
            self.model = onnx.load(str(self.out.root / self.artifact))  # model.onnx, or int8
        except Exception as exc:
            raise RuntimeProblem(f"onnx.load failed: {first_line(exc)}") from exc
        self.input_name = self.model.graph.input[0].name
        dim0 = self.model.graph.input[0].type.tensor_type.shape.dim[0]
        self.static_batch = dim0.dim_value if dim0.HasField("dim_value") else None

    def parameters(self) -> dict[str, np.ndarray]:
        from onnx import numpy_helper

        return {t.name: numpy_helper.to_array(t) for t in self.model.graph.initializer}

    def observable(self):
        """A copy of the model whose graph outputs are every node's outputs, in node order."""
        import onnx

        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        typed = {v.name: v for v in model.graph.value_info}
        present = {o.name for o in model.graph.output}
        labels = [o for node in model.graph.node for o in node.output if o]
        for name in labels:
            if name not in present:
                model.graph.output.append(typed.get(name) or onnx.ValueInfoProto(name=name))
        return model, labels

    def observe(self, x: np.ndarray) -> Observed:
        """Every node's outputs, in node order, as far as the runtime gives them back."""
        model, labels = self.observable()
        values = self.run_observable(model, x)
        return [(name, values[name]) for name in labels if name in values]

    @abc.abstractmethod
    def run_observable(self, model, x: np.ndarray) -> dict[str, np.ndarray]:
        """The outputs of `model` (observable()'s copy) on x, by name: each adapter's own way."""
