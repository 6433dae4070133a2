"""Runtime litert and litert[builtin]: model.tflite in LiteRT (TensorFlow Lite) on the CPU.

What an Android app embeds (`org.tensorflow.lite.Interpreter`, or LiteRT's CompiledModel); here
the `ai-edge-litert` wheel, the same C++ interpreter. `litert` is what `Interpreter(model)` gives:
the XNNPACK delegate applied by default. `litert[builtin]` runs LiteRT's own built-in kernels
without any default delegate, as on a build or device where XNNPACK is off. model.tflite is
converted at batch 1 (export/mobile.py): a batch runs one sample per invocation, as an app does.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from ..artifacts import BuildDir
from ..export.mobile import INSTALL, quiet
from ..spec.load import Spec
from .base import Runtime, RuntimeProblem, first_line
from .registry import RuntimeKind, register


class LiteRT(Runtime):
    artifact = "model.tflite"

    def __init__(self, out: BuildDir, spec: Spec, builtin: bool) -> None:
        super().__init__(out, spec)
        self.builtin = builtin
        self.name = "litert[builtin]" if builtin else "litert"

    def unavailable(self) -> str | None:
        if importlib.util.find_spec("ai_edge_litert") is None:
            return f"the ai-edge-litert Python package is not installed; install: {INSTALL}"
        if not self.out.tflite.is_file() and self.spec.export.litert:
            return (
                "model.tflite was not exported (litert-torch was not installed when it was built)"
            )
        if not self.out.tflite.is_file():
            return "model.tflite was not exported (export.litert.enabled: false)"
        return None

    def load(self) -> None:
        super().load()
        try:
            with quiet():
                from ai_edge_litert.interpreter import Interpreter, OpResolverType

                kind = OpResolverType.AUTO
                if self.builtin:
                    kind = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
                self.interpreter = Interpreter(
                    model_content=self.out.tflite.read_bytes(),
                    num_threads=self.threads,
                    experimental_op_resolver_type=kind,
                )
                self.interpreter.allocate_tensors()
        except Exception as exc:  # a broken install, a delegate that fails, a damaged file
            raise RuntimeProblem(f"LiteRT could not load model.tflite: {first_line(exc)}") from exc
        (self.input,) = self.interpreter.get_input_details()
        (self.output,) = self.interpreter.get_output_details()
        self.batch = int(self.input["shape"][0])

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        parts = []
        for i in range(0, len(x), self.batch):
            self.interpreter.set_tensor(self.input["index"], x[i : i + self.batch])
            self.interpreter.invoke()
            parts.append(self.interpreter.get_tensor(self.output["index"]).copy())
        return [np.concatenate(parts)]


register(
    RuntimeKind(
        "litert", 120, lambda t: [LiteRT(t.out, t.spec, False), LiteRT(t.out, t.spec, True)]
    )
)
