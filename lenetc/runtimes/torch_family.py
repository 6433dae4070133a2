"""Runtimes (torch family): what torch eager, TorchScript and torch.export share.

Each runs its module on a device with TF32 off, offers its named child modules for locating a
divergence, its state_dict as parameters, and, where it has an fx graph, every intermediate tensor.
"""

from __future__ import annotations

import numpy as np
import torch

from ..artifacts import BuildDir
from ..spec.load import Spec
from .base import Observed, Runtime
from .cuda import full_float32, torch_cuda_problem


class TorchRuntime(Runtime):
    module: torch.nn.Module

    def __init__(self, out: BuildDir, spec: Spec, device: str = "cpu") -> None:
        super().__init__(out, spec)
        self.device = device
        self.name = f"{self.kind}[{device}]"

    kind = ""

    def unavailable(self) -> str | None:
        return torch_cuda_problem() if self.device == "cuda" else None

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad(), full_float32():
            y = self.module(torch.from_numpy(x).to(self.device))
        return [t.detach().cpu().numpy() for t in tensors(y)]

    def layer(self, name: str):
        child = dict(self.module.named_children()).get(name)
        if child is None:
            return None
        return lambda t: tensors(child(t.to(self.device)))[0].cpu()

    def parameters(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.module.state_dict().items()}

    def observe(self, x: np.ndarray) -> Observed | None:
        graph_module = self._graph_module()
        if graph_module is None:
            return None
        seen: Observed = []

        class Recorder(torch.fx.Interpreter):
            def run_node(self, node):
                value = super().run_node(node)
                if node.op.startswith("call_") and isinstance(value, torch.Tensor):
                    label = node.target if node.op == "call_module" else node.name
                    seen.append((str(label), value.detach().cpu().numpy()))
                return value

        with torch.no_grad(), full_float32():
            Recorder(graph_module).run(torch.from_numpy(x).to(self.device))
        return seen

    def _graph_module(self) -> torch.fx.GraphModule | None:
        return None


def tensors(y) -> list[torch.Tensor]:
    return list(y) if isinstance(y, (tuple, list)) else [y]
