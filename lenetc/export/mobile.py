"""Stage 5, export, for phones: an nn.Module -> model.pte (ExecuTorch) and model.tflite (LiteRT).

Takes any eval-mode module (the float one today; a quantized one goes through the same functions),
an example input and the file to write; writes it atomically and returns None, or returns
Skipped(artifact, why) when the converter's package is not installed or cannot be imported (the
`lenetc[mobile]` extra). A converter that fails on the network is one RuntimeFailure line naming
the stage and, where it can be found, the layer (failure.py), with the key that turns it off.

- model.pte: torch.export with a dynamic batch axis up to `max_batch` -> ExecuTorch's edge dialect
  with the XNNPACK partitioner (every supported op runs in the XNNPACK delegate) -> `.pte` bytes.
  ExecuTorch plans its input and output memory for the largest batch, so the bound is a spec key
  (export.executorch.max_batch); a caller with more samples runs them in chunks.
- model.tflite: litert-torch (formerly ai-edge-torch) converts at the example's batch, 1: its
  lowering cannot keep a symbolic batch through flatten's reshape (measured with 0.10.0), and
  LiteRT embedders run single samples.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..artifacts import BuildDir, write_bytes
from ..errors import RuntimeFailure
from ..spec.load import Spec
from .failure import failure

INSTALL = "pip install 'lenetc[mobile]'"
FORWARD_ARG = "x"
# Library loggers that report their own internals while converting (torchao's optional CUDA
# kernels, absl, jax's platform probe): not the user's business, and never a failure.
JAX_FORK = (
    r"os\.fork\(\) was called\. os\.fork\(\) is incompatible with multithreaded code, and JAX"
)
QUIET_LOGGERS = ("torchao", "absl", "jax._src.xla_bridge", "executorch", "litert_torch")


@dataclass(frozen=True)
class Skipped:
    """An optional artifact that was not written, and why (one line)."""

    artifact: str
    why: str


def missing(module: str, package: str, artifact: str) -> Skipped | None:
    """Skipped when `module` is not installed or does not import; None when it imports."""
    if importlib.util.find_spec(module.split(".")[0]) is None:
        return Skipped(artifact, f"{package} is not installed; install: {INSTALL}")
    try:
        with quiet():
            importlib.import_module(module)
    except Exception as exc:  # installed but broken: a wrong wheel, a missing native library
        line = (str(exc).strip().splitlines() or [""])[0]
        return Skipped(
            artifact,
            f"{package} is installed but cannot be imported ({type(exc).__name__}: "
            f"{line}); reinstall: {INSTALL}",
        )
    return None


def export_pte(
    module: nn.Module,
    example: torch.Tensor,
    path: Path,
    max_batch: int,
    spec: Spec,
    out: BuildDir,
) -> Skipped | None:
    """`path` (.pte): `module` lowered to ExecuTorch with XNNPACK, batch 1 to `max_batch`."""
    skipped = missing("executorch.exir", "executorch", path.name)
    if skipped:
        return skipped
    try:
        with quiet():
            data = pte_bytes(module, example, max_batch)
    except Exception as exc:
        raise _failed("pte", exc, spec, out, "export.executorch.enabled") from exc
    write_bytes(path, data)
    return None


def pte_bytes(module: nn.Module, example: torch.Tensor, max_batch: int) -> bytes:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    shapes = None
    if max_batch > 1:
        example = example[:1].expand((2,) + tuple(example.shape[1:])).contiguous()
        shapes = {FORWARD_ARG: {0: torch.export.Dim("batch", min=1, max=max_batch)}}
    else:
        example = example[:1]
    program = torch.export.export(module.eval(), (example,), dynamic_shapes=shapes)
    ranges = dict(program.range_constraints)
    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    _restore_ranges(edge.exported_program(), ranges)
    data = edge.to_executorch().buffer
    planned = _planned_batch(data)
    if planned != max_batch:
        raise RuntimeFailure(
            f"export stage pte: ExecuTorch planned the input for batch {planned}, not "
            f"export.executorch.max_batch {max_batch}"
        )
    return data


def _restore_ranges(program, ranges: dict) -> None:
    """Put back the batch range torch.export was given. executorch 1.5.1's XNNPACK lowering
    narrows it when the network has a convolution (LeNet's [1, 1024] becomes [2, 15]), and
    memory planning then sizes the input for 15 samples: batch 16 fails at run time."""
    for node in program.graph_module.graph.nodes:
        value = node.meta.get("val")
        if not isinstance(value, torch.Tensor):
            continue
        for size in value.shape:
            if isinstance(size, torch.SymInt) and size.node.expr in ranges:
                size.node.shape_env.var_to_range[size.node.expr] = ranges[size.node.expr]


def _planned_batch(data: bytes) -> int:
    """The batch ExecuTorch's memory plan holds for the input (read back from the program)."""
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(data).load_method("forward")
    return int(method.metadata.input_tensor_meta(0).sizes()[0])


def export_tflite(
    module: nn.Module,
    example: torch.Tensor,
    path: Path,
    spec: Spec,
    out: BuildDir,
    **convert: object,
) -> Skipped | None:
    """`path` (.tflite): `module` converted by litert-torch at the example's batch; `convert`
    goes to litert_torch.convert as it is (an int8 build passes its `quant_config`)."""
    skipped = missing("litert_torch", "litert-torch", path.name)
    if skipped:
        return skipped
    try:
        with quiet():
            import litert_torch

            data = litert_torch.convert(module.eval(), (example,), **convert).model_content()
    except Exception as exc:
        raise _failed("tflite", exc, spec, out, "export.litert.enabled") from exc
    # litert-torch imported jax, which warns at every later fork of this process; the one fork
    # that follows in a build is OpenVINO's telemetry sender (a multiprocessing child that runs
    # no jax), during verify. That exact message only, for the rest of the process.
    warnings.filterwarnings("ignore", JAX_FORK, RuntimeWarning)
    write_bytes(path, data)
    return None


def _failed(stage: str, exc: BaseException, spec: Spec, out: BuildDir, key: str):
    found = failure(stage, exc, spec, out)
    return RuntimeFailure(f"{found}\n  hint: set {key}: false to build without it")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The converters' and runtimes' own chatter kept off lenetc's output: Python warnings,
    library logs and prints, and what their C++ writes straight to file descriptor 2 (cpuinfo's
    probe of ARM registers, absl's start-up lines). An exception still propagates with its
    message, which is where a real problem is reported."""
    saved = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    try:
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR + 1)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _fd2_dropped():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _fd2_dropped() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as sink:
            os.dup2(sink.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
