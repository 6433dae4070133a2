"""Stage 5, export: a trained nn.Module -> weights.pt, model.onnx, model.torchscript.pt, model.pt2.

Takes the module (eval mode), the spec and the dataset's normalization; writes each artifact
atomically into the build folder. TorchScript is deprecated upstream but still what people embed
in libtorch, so we still write it and silence only that one deprecation warning, on purpose.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import torch
from torch import nn

from .artifacts import BuildDir, write_with
from .errors import RuntimeFailure
from .spec import Spec

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def example_input(spec: Spec, batch: int = 2) -> torch.Tensor:
    return torch.zeros((batch,) + spec.input_shape)


def export_weights(model: nn.Module, out: BuildDir) -> None:
    write_with(out.weights, lambda p: torch.save(model.state_dict(), p))


def export_onnx(model: nn.Module, spec: Spec, out: BuildDir) -> None:
    x = example_input(spec)
    dynamic = (
        {"x": {0: torch.export.Dim("batch", min=1, max=65536)}}
        if spec.export.dynamic_batch
        else None
    )

    def write(path) -> None:
        with _quiet():
            torch.onnx.export(
                model,
                (x,),
                str(path),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=spec.export.opset,
                dynamic_shapes=dynamic,
                external_data=False,
                verbose=False,
            )

    try:
        write_with(out.onnx, write)
    except Exception as exc:  # the exporter raises many types; say which stage, in one line
        raise RuntimeFailure(
            f"ONNX export failed: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc


def export_torchscript(model: nn.Module, spec: Spec, out: BuildDir) -> None:
    with warnings.catch_warnings():
        # torch 2.13 deprecates jit.script/trace; lenetc ships TorchScript for libtorch users anyway.
        warnings.filterwarnings(
            "ignore",
            message=r".*torch\.jit\.(script|trace).*deprecated",
            category=DeprecationWarning,
        )
        try:
            if spec.export.torchscript_mode == "trace":
                scripted = torch.jit.trace(model, example_input(spec))
            else:
                scripted = torch.jit.script(model)
        except Exception as exc:
            raise RuntimeFailure(f"TorchScript export failed: {_first_line(exc)}") from exc
    write_with(out.torchscript, lambda p: torch.jit.save(scripted, str(p)))


def export_program(model: nn.Module, spec: Spec, out: BuildDir) -> None:
    x = example_input(spec)
    dynamic = {"x": {0: torch.export.Dim("batch", min=1, max=65536)}}
    try:
        program = torch.export.export(model, (x,), dynamic_shapes=dynamic)
    except Exception as exc:
        raise RuntimeFailure(f"torch.export failed: {_first_line(exc)}") from exc
    write_with(out.pt2, lambda p: torch.export.save(program, str(p)))


@contextlib.contextmanager
def _quiet():
    """The ONNX exporter prints progress lines and registration warnings; keep the CLI clean."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
