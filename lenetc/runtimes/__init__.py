"""Stage 6a, runtimes: one adapter module per way of running a build folder's artifacts.

In: a build folder and its Spec. Out: Runtime objects (base.py) that verify/ drives and compares;
adapters only run, the comparison lives in verify/. Today: torch eager, TorchScript, torch.export
(torch_*.py), ONNX Runtime per execution provider (onnxruntime.py) and the ONNX reference
evaluator (onnx_reference.py). `plan` lists the runtimes to try, in table order.
"""

from __future__ import annotations

from ..artifacts import BuildDir
from ..spec.load import Spec
from .base import Runtime
from .c import CTarget
from .onnx_reference import OnnxReference
from .onnxruntime import OnnxRuntime
from .torch_eager import TorchEager
from .torch_export import TorchProgram
from .torchscript import TorchScript


def plan(out: BuildDir, spec: Spec, providers: tuple[str, ...]) -> list[Runtime]:
    """Every runtime to try, in table order: the torch family, then ONNX Runtime, then ONNX."""
    devices = ["cpu"] + [p for p in providers if p != "cpu"]
    runtimes: list[Runtime] = []
    for device in devices:
        runtimes += [cls(out, spec, device) for cls in (TorchEager, TorchScript, TorchProgram)]
    runtimes += [OnnxRuntime(out, spec, p) for p in providers]
    runtimes.append(OnnxReference(out, spec))
    runtimes.append(CTarget(out, spec))
    return runtimes
