"""Runtime openvino[cpu] and openvino[cpu,f32]: model.onnx in OpenVINO on the CPU, two sessions.

`openvino[cpu]` is what a user gets from `core.compile_model(model, "CPU")`: on CPUs with AMX (or
AVX-512 BF16) OpenVINO then computes in bfloat16 by default, ~1e-2 off on a LeNet, far outside
float32 tolerances. The row is judged like every other; when it misses the tolerance because of
that lower precision (read back from the compiled model) its result is a warning, and a failure
where it is required. `openvino[cpu,f32]` sets INFERENCE_PRECISION_HINT f32: the float32 proof.
"""

from __future__ import annotations

import numpy as np

from ..artifacts import BuildDir
from ..spec.load import Spec
from .base import RuntimeProblem, first_line
from .onnx_model import OnnxModelRuntime
from .registry import RuntimeKind, register

INSTALL = "pip install 'lenetc[runtimes]' (or: pip install openvino)"
F32 = {"INFERENCE_PRECISION_HINT": "f32"}


class OpenVino(OnnxModelRuntime):
    def __init__(self, out: BuildDir, spec: Spec, config: dict[str, str]) -> None:
        super().__init__(out, spec)
        self.config = config
        self.name = "openvino[cpu,f32]" if config else "openvino[cpu]"

    def unavailable(self) -> str | None:
        try:
            import openvino  # noqa: F401
        except ImportError as exc:
            return f"the openvino Python package cannot be imported ({exc}); install: {INSTALL}"
        return None

    def load(self) -> None:
        super().load()
        self.compiled = self._compile(self.model.SerializeToString())
        precision = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        if str(precision.get_type_name()) != "f32":
            self.reduced_precision = (
                f"OpenVINO's default on this CPU computes in {precision.get_type_name()}, not "
                f"float32 (INFERENCE_PRECISION_HINT = {precision.get_type_name()}): this is what "
                f'core.compile_model(model, "CPU") gives; embed with {F32} (row openvino[cpu,f32]) '
                f"for float32 parity, or --require openvino[cpu] to make this a failure"
            )

    def _compile(self, model_bytes: bytes):
        import openvino as ov

        core = ov.Core()
        try:
            model = core.read_model(model_bytes, b"")
            return core.compile_model(model, "CPU", self.config)
        except Exception as exc:
            raise RuntimeProblem(f"OpenVINO could not load the model: {first_line(exc)}") from exc

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        result = self.compiled(x)
        return [np.asarray(result[o]) for o in self.compiled.outputs]

    def run_observable(self, model, x: np.ndarray) -> dict[str, np.ndarray]:
        compiled = self._compile(model.SerializeToString())
        result = compiled(x)
        return {o.get_any_name(): np.asarray(result[o]) for o in compiled.outputs}


register(
    RuntimeKind(
        "openvino", 70, lambda t: [OpenVino(t.out, t.spec, {}), OpenVino(t.out, t.spec, F32)]
    )
)
