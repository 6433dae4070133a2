"""Runtime torch.export[cpu|cuda]: the torch.export program (model.pt2), run unlifted; loaded only
once export/pt2_check.py finds nothing in it that torch.export.load would unpickle unsafely."""

from __future__ import annotations

import numpy as np
import torch

from ..expected_warnings import TORCH_EXPORT_LOAD_LOG, expected_log
from ..export.pt2_check import pt2_problem
from .base import RuntimeProblem, first_line
from .registry import RuntimeKind, register
from .torch_family import TorchRuntime


class TorchProgram(TorchRuntime):
    """The torch.export program (.pt2), run through its unlifted module."""

    kind = "torch.export"
    artifact = "model.pt2"

    def load(self) -> None:
        super().load()
        why = pt2_problem(self.out.pt2)  # torch.export.load unpickles unsafely: check first
        if why is not None:
            raise RuntimeProblem(f"model.pt2 refused before torch.export.load: {why}")
        try:
            with expected_log(TORCH_EXPORT_LOAD_LOG):  # the error is raised and reported too
                self.program = torch.export.load(str(self.out.pt2))
            self.module = self.program.module().to(self.device)
        except Exception as exc:
            raise RuntimeProblem(f"torch.export.load failed: {first_line(exc)}") from exc

    def parameters(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.program.state_dict.items()}

    def _graph_module(self):
        return self.module


register(
    RuntimeKind("torch.export", 30, lambda t: [TorchProgram(t.out, t.spec, d) for d in t.devices])
)
