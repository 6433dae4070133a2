"""Runtime onnxruntime[cpu|cuda]: model.onnx in ONNX Runtime, one execution provider each.

A provider that was requested but that the session does not run on is a SilentFallback, never a
pass (`session.get_providers()` is asked after the session is made).
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np

from ..artifacts import BuildDir
from ..spec.load import Spec
from .base import RuntimeProblem, SilentFallback, first_line
from .cuda import CUDA_PROVIDER_OPTIONS, cuda_device_problem
from .onnx_model import OnnxModelRuntime
from .registry import RuntimeKind, register

EXECUTION_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


class OnnxRuntime(OnnxModelRuntime):
    def __init__(self, out: BuildDir, spec: Spec, provider: str) -> None:
        super().__init__(out, spec)
        self.device = provider
        self.provider = EXECUTION_PROVIDERS[provider]
        self.name = f"onnxruntime[{provider}]"

    def unavailable(self) -> str | None:
        import onnxruntime as ort

        offered = ort.get_available_providers()
        if self.provider not in offered:
            return (
                f"onnxruntime {ort.__version__} has no {self.provider} (it offers "
                f"{', '.join(offered)}); install onnxruntime-gpu for CUDA"
            )
        return cuda_device_problem() if self.device == "cuda" else None

    def load(self) -> None:
        super().load()
        self.session = self._session(self.model.SerializeToString())

    def _session(self, model_bytes: bytes):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only; a fallback is caught below, not logged
        if self.threads:  # bench: a stated thread count (ONNX Runtime's default: every core)
            options.intra_op_num_threads = options.inter_op_num_threads = self.threads
        providers: list = ["CPUExecutionProvider"]
        if self.provider != "CPUExecutionProvider":
            providers.insert(0, (self.provider, CUDA_PROVIDER_OPTIONS))
        said = io.StringIO()
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(said):
            warnings.simplefilter("always")
            try:
                session = ort.InferenceSession(model_bytes, options, providers=providers)
            except Exception as exc:
                raise RuntimeProblem(
                    f"onnxruntime could not load the model: {first_line(exc)}"
                ) from exc
        got = session.get_providers()
        if self.provider not in got:
            why = [str(w.message) for w in caught] + said.getvalue().strip().splitlines()
            raise SilentFallback(
                f"requested {self.provider}, but the session runs on {', '.join(got)} only "
                f"(a silent fallback)" + (f"; onnxruntime said: {why[0]}" if why else "")
            )
        return session

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: x})

    def run_observable(self, model, x: np.ndarray) -> dict[str, np.ndarray]:
        session = self._session(model.SerializeToString())
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(None, {self.input_name: x})))


register(
    RuntimeKind("onnxruntime", 40, lambda t: [OnnxRuntime(t.out, t.spec, p) for p in t.providers])
)
