"""Runtime torch.export[cpu|cuda]: the torch.export program (model.pt2), run unlifted."""

from __future__ import annotations

import numpy as np
import torch

from ..expected_warnings import TORCH_EXPORT_LOAD_LOG, expected_log
from .base import RuntimeProblem, first_line
from .registry import RuntimeKind, register
from .torch_family import TorchRuntime


class TorchProgram(TorchRuntime):
    """The torch.export program (.pt2), run through its unlifted module."""

    kind = "torch.export"
    artifact = "model.pt2"

    def load(self) -> None:
        super().load()
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
