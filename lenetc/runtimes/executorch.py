"""Runtime executorch[xnnpack]: model.pte in ExecuTorch's runtime, the XNNPACK delegate on the CPU.

What an Android or iOS app embeds (`Module` in Java/Kotlin, Swift or C++); here through
`executorch.runtime`, the same C++ runtime and delegate behind a Python binding. The program's
memory is planned for export.executorch.max_batch samples: a larger batch runs in chunks of it.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from ..export.mobile import INSTALL, quiet
from .base import Runtime, RuntimeProblem, first_line
from .registry import RuntimeKind, register


class ExecuTorch(Runtime):
    name = "executorch[xnnpack]"
    artifact = "model.pte"

    def unavailable(self) -> str | None:
        if importlib.util.find_spec("executorch") is None:
            return f"the executorch Python package is not installed; install: {INSTALL}"
        if not self.out.pte.is_file() and self.spec.export.executorch:
            return "model.pte was not exported (executorch was not installed when it was built)"
        if not self.out.pte.is_file():
            return "model.pte was not exported (export.executorch.enabled: false)"
        return None

    def load(self) -> None:
        super().load()
        try:
            with quiet():
                from executorch.runtime import Runtime as Engine

                # the method points into the program and its bytes: keep all three alive
                self.data = self.out.pte.read_bytes()
                self.program = Engine.get().load_program(self.data)
                self.method = self.program.load_method("forward")
        except Exception as exc:  # a broken install, a delegate that fails, a damaged file
            raise RuntimeProblem(f"ExecuTorch could not load model.pte: {first_line(exc)}") from exc
        self.capacity = int(self.method.metadata.input_tensor_meta(0).sizes()[0])

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        import torch

        parts = []
        for i in range(0, len(x), self.capacity):  # the memory plan holds `capacity` samples
            (y,) = self.method.execute(
                [torch.from_numpy(np.ascontiguousarray(x[i : i + self.capacity]))]
            )
            parts.append(y.numpy().copy())
        return [np.concatenate(parts)]


register(RuntimeKind("executorch", 110, lambda t: [ExecuTorch(t.out, t.spec)]))
