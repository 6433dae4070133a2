"""Runtime torch[cpu|cuda]: the generated model.py with weights.pt, in float32."""

from __future__ import annotations

import torch

from ..artifacts import load_module_class, load_pt
from .registry import RuntimeKind, register
from .torch_family import TorchRuntime


class TorchEager(TorchRuntime):
    """The generated model.py with weights.pt, in float32: what training produced."""

    kind = "torch"
    artifact = "model.py"

    def load(self) -> None:
        super().load()
        model = load_module_class(self.out.model_py, self.spec.class_name)()
        model.load_state_dict(load_pt(self.out.weights))
        self.module = model.eval().to(self.device)

    def _graph_module(self):
        return torch.fx.symbolic_trace(self.module)


register(RuntimeKind("torch", 10, lambda t: [TorchEager(t.out, t.spec, d) for d in t.devices]))
