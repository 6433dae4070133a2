"""Runtime torchscript[cpu|cuda]: model.torchscript.pt via torch.jit.load (what libtorch loads)."""

from __future__ import annotations

import torch

from ..expected_warnings import TORCHSCRIPT_WARNINGS, expected_warnings
from .base import RuntimeProblem, first_line
from .registry import RuntimeKind, register
from .torch_family import TorchRuntime


class TorchScript(TorchRuntime):
    kind = "torchscript"
    artifact = "model.torchscript.pt"

    def load(self) -> None:
        super().load()
        try:
            with expected_warnings(TORCHSCRIPT_WARNINGS):  # still what libtorch loads
                self.module = torch.jit.load(str(self.out.torchscript), map_location=self.device)
        except Exception as exc:
            raise RuntimeProblem(f"torch.jit.load failed: {first_line(exc)}") from exc
        self.module.eval()


register(
    RuntimeKind("torchscript", 20, lambda t: [TorchScript(t.out, t.spec, d) for d in t.devices])
)
