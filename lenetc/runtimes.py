"""Stage 6, verify (runtimes): one adapter per way of running a build folder's artifacts.

Each adapter takes the build folder and runs float32 inputs through one artifact on one runtime
and device: torch eager (model.py + weights.pt), TorchScript (model.torchscript.pt), the
torch.export program (model.pt2), ONNX Runtime per execution provider (model.onnx), and the ONNX
reference evaluator. An adapter says why it cannot run here (`unavailable`), loads its artifact
(`load`, raising RuntimeProblem or SilentFallback), and returns outputs as numpy arrays (`run`).
To locate a divergence it also offers its intermediate tensors in execution order (`observe`), its
layer submodules (`layer`) and its parameters by torch name (`parameters`), where it can.
"""

from __future__ import annotations

import abc
import contextlib
import ctypes
import io
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import torch

from .artifacts import BuildDir, load_module_class
from .expected_warnings import TORCHSCRIPT_WARNINGS, expected_warnings
from .spec import Spec

EXECUTION_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
# TF32 rounds float32 matmul/conv inputs to 10 mantissa bits (~1e-3 relative); the parity proof is
# about float32, so every CUDA runtime runs with it off (docs/readme-verify.md says why).
CUDA_PROVIDER_OPTIONS = {"use_tf32": "0"}

Observed = list[tuple[str, np.ndarray]]


class RuntimeProblem(Exception):
    """The artifact could not be loaded or run on this runtime: a failure, with the cause."""


class SilentFallback(RuntimeProblem):
    """An execution provider was requested, but the session runs without it."""


def cuda_device_problem() -> str | None:
    """Why no CUDA device can be used here, or None when one can. Asks the driver, not torch."""
    if torch.cuda.is_available():
        return None
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no CUDA device (no NVIDIA driver: libcuda.so.1 cannot be loaded)"
    count = ctypes.c_int(0)
    status = libcuda.cuInit(0)
    if status != 0:
        return f"no CUDA device (the driver's cuInit returned error {status})"
    if libcuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
        return "no CUDA device (the driver reports 0 devices)"
    return None


def torch_cuda_problem() -> str | None:
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is built without CUDA"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device"
    return None


@contextlib.contextmanager
def full_float32() -> Iterator[None]:
    """Run CUDA convolutions and matmuls in full float32 (no TF32), restoring the settings."""
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


class Runtime(abc.ABC):
    """One artifact on one runtime and device. Subclasses fill in what they can do."""

    name = ""
    artifact = ""
    device = "cpu"
    static_batch: int | None = None  # an ONNX graph exported without a dynamic batch axis

    def __init__(self, out: BuildDir, spec: Spec) -> None:
        self.out = out
        self.spec = spec

    def unavailable(self) -> str | None:
        return None

    def load(self) -> None:
        path = self.out.root / self.artifact
        if not path.is_file():
            raise RuntimeProblem(f"{path.name} is missing from the build folder")

    @abc.abstractmethod
    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """The artifact's outputs for a float32 batch."""

    def observe(self, x: np.ndarray) -> Observed | None:
        return None

    def layer(self, name: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
        return None

    def parameters(self) -> dict[str, np.ndarray] | None:
        return None


# ---- the torch family: eager, TorchScript, torch.export ------------------------------------------


class _TorchRuntime(Runtime):
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
        return [t.detach().cpu().numpy() for t in _tensors(y)]

    def layer(self, name: str):
        child = dict(self.module.named_children()).get(name)
        if child is None:
            return None
        return lambda t: _tensors(child(t.to(self.device)))[0].cpu()

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


class TorchEager(_TorchRuntime):
    """The generated model.py with weights.pt, in float32: what training produced."""

    kind = "torch"
    artifact = "model.py"

    def load(self) -> None:
        super().load()
        model = load_module_class(self.out.model_py, self.spec.class_name)()
        model.load_state_dict(torch.load(self.out.weights, weights_only=True))
        self.module = model.eval().to(self.device)

    def _graph_module(self):
        return torch.fx.symbolic_trace(self.module)


class TorchScript(_TorchRuntime):
    kind = "torchscript"
    artifact = "model.torchscript.pt"

    def load(self) -> None:
        super().load()
        try:
            with expected_warnings(TORCHSCRIPT_WARNINGS):  # still what libtorch loads
                self.module = torch.jit.load(str(self.out.torchscript), map_location=self.device)
        except Exception as exc:
            raise RuntimeProblem(f"torch.jit.load failed: {_first_line(exc)}") from exc
        self.module.eval()


class TorchProgram(_TorchRuntime):
    """The torch.export program (.pt2), run through its unlifted module."""

    kind = "torch.export"
    artifact = "model.pt2"

    def load(self) -> None:
        super().load()
        try:
            self.program = torch.export.load(str(self.out.pt2))
            self.module = self.program.module().to(self.device)
        except Exception as exc:
            raise RuntimeProblem(f"torch.export.load failed: {_first_line(exc)}") from exc

    def parameters(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.program.state_dict.items()}

    def _graph_module(self):
        return self.module


def _tensors(y) -> list[torch.Tensor]:
    return list(y) if isinstance(y, (tuple, list)) else [y]


# ---- ONNX: ONNX Runtime per execution provider, and the reference evaluator ---------------------


class _OnnxRuntime(Runtime):
    artifact = "model.onnx"

    def load(self) -> None:
        super().load()
        import onnx

        try:
            self.model = onnx.load(str(self.out.onnx))
        except Exception as exc:
            raise RuntimeProblem(f"onnx.load failed: {_first_line(exc)}") from exc
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


class OnnxRuntime(_OnnxRuntime):
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
                    f"onnxruntime could not load the model: {_first_line(exc)}"
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

    def observe(self, x: np.ndarray) -> Observed:
        model, labels = self.observable()
        session = self._session(model.SerializeToString())
        names = [o.name for o in session.get_outputs()]
        values = dict(zip(names, session.run(None, {self.input_name: x})))
        return [(name, values[name]) for name in labels if name in values]


class OnnxReference(_OnnxRuntime):
    """onnx.reference.ReferenceEvaluator: the ONNX spec's own semantics, in numpy."""

    name = "onnx.reference"

    def load(self) -> None:
        super().load()
        from onnx.reference import ReferenceEvaluator

        try:
            self.evaluator = ReferenceEvaluator(self.model)
        except Exception as exc:
            raise RuntimeProblem(f"ReferenceEvaluator failed: {_first_line(exc)}") from exc

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        return list(self.evaluator.run(None, {self.input_name: x}))

    def observe(self, x: np.ndarray) -> Observed:
        values = self.evaluator.run(None, {self.input_name: x}, intermediate=True)
        labels = [o for node in self.model.graph.node for o in node.output if o]
        return [(name, np.asarray(values[name])) for name in labels if name in values]


def plan(out: BuildDir, spec: Spec, providers: tuple[str, ...]) -> list[Runtime]:
    """Every runtime to try, in table order: the torch family, then ONNX Runtime, then ONNX."""
    devices = ["cpu"] + [p for p in providers if p != "cpu"]
    runtimes: list[Runtime] = []
    for device in devices:
        runtimes += [cls(out, spec, device) for cls in (TorchEager, TorchScript, TorchProgram)]
    runtimes += [OnnxRuntime(out, spec, p) for p in providers]
    runtimes.append(OnnxReference(out, spec))
    return runtimes


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


__all__ = ["Runtime", "RuntimeProblem", "SilentFallback", "plan"]
