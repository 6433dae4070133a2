"""Stage 5, export: a trained nn.Module -> weights.pt, model.onnx, model.torchscript.pt, model.pt2,
and where lenetc[mobile] is installed model.pte and model.tflite (mobile.py).

Takes the module (eval mode), the spec and DataFacts (the dataset's name, normalization, labels
and held-out samples); writes each artifact atomically into the build folder, then the golden
I/O bundle (golden_io.py) and c/selftest.c from it (c_selftest.py), and returns an ExportReport
(seconds per artifact, the proven batch sizes). A failure is one RuntimeFailure line naming the
stage and, where it can be found, the layer (failure.py).

Warnings are handled one by one (see `expected_warnings`): the ones we know and accept are
dropped by exact message, anything else is re-emitted so that a new problem stays visible.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..artifacts import BuildDir, write_bytes
from ..check.shapes import check
from ..errors import Location, Problem, RuntimeFailure, SpecError
from ..expected_warnings import TORCHSCRIPT_WARNINGS, expected_warnings
from ..spec.config import NATIVE_OPSET
from ..spec.load import Spec
from ..targets.c import DatasetInfo
from . import golden_io, mobile, onnx_meta, onnx_opset
from .c_selftest import export_selftest
from .c_weights import export_c
from .failure import failure

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
FORWARD_ARG = "x"  # the generated forward(self, x); dynamic_shapes is keyed by it
MAX_BATCH = 65536
STATIC_BATCH = 1  # the batch size baked in when export.onnx.dynamic_batch is false
PROOF_BATCHES = (1, 7, 300)  # batch 1, an odd batch, a large one: the dynamic axis, proven

# (category, message regex, why we accept it). Matched against the start of the message.
EXPORTER_WARNINGS = (
    (
        FutureWarning,
        r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        "raised inside torch.export's own pytree code in 2.13; nothing lenetc calls",
    ),
)
# The ONNX registry logs one line per torchvision op it cannot register; lenetc uses none.
REGISTRY_LOGGER = "torch.onnx._internal.exporter._registration"
REGISTRY_NOISE = re.compile(r"torchvision is not installed")


@dataclass(frozen=True)
class DataFacts:
    """What export needs from the dataset: names, normalization, raw range, held-out samples."""

    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    labels: tuple[str, ...]
    input_range: tuple[float, float]  # raw (unnormalized) min and max of the training split
    x_test: np.ndarray  # normalized, as the model sees them
    y_test: np.ndarray

    @classmethod
    def from_dataset(cls, data) -> DataFacts:
        span = getattr(data, "input_range", None)  # a streamed dataset measured it as it read
        if span is None:
            x = data.x_train
            shape = (1, -1) + (1,) * (x.ndim - 2)
            raw = x * np.asarray(data.std).reshape(shape) + np.asarray(data.mean).reshape(shape)
            span = (float(raw.min()), float(raw.max())) if raw.size else (0.0, 1.0)
        return cls(
            data.name,
            tuple(data.mean),
            tuple(data.std),
            tuple(data.labels),
            span,
            data.x_test,
            data.y_test,
        )

    def info(self) -> DatasetInfo:
        return DatasetInfo(self.name, self.mean, self.std, self.labels, self.input_range)


@dataclass
class ExportReport:
    opset: int
    seconds: dict[str, float] = field(default_factory=dict)
    batch_max_abs: dict[int, float] = field(default_factory=dict)  # ORT vs torch, float32
    skipped: dict[str, str] = field(default_factory=dict)  # artifact -> why it was not written

    def summary(self) -> str:
        times = ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())
        batches = ", ".join(f"{b}: {d:.1e}" for b, d in self.batch_max_abs.items())
        lines = [f"exported (opset {self.opset}): {times}; ONNX batch max |diff| {batches}"]
        lines += [f"  {name} not exported: {why}" for name, why in self.skipped.items()]
        return "\n".join(lines)


def export_all(model: nn.Module, spec: Spec, facts: DataFacts, out: BuildDir) -> ExportReport:
    """Every export artifact of the build folder (README.md), each written atomically."""
    model.eval()
    report = ExportReport(opset=spec.export.opset)
    stages: tuple[tuple[str, Callable[[], object]], ...] = (
        ("weights", lambda: export_weights(model, out)),
        ("c", lambda: export_c(out, check(spec), facts.info())),  # reads weights.pt back
        ("onnx", lambda: report.batch_max_abs.update(export_onnx(model, spec, facts, out))),
        ("torchscript", lambda: export_torchscript(model, spec, out)),
        ("pt2", lambda: export_program(model, spec, out)),
        ("golden", lambda: export_golden(model, spec, facts, out)),
        ("selftest", lambda: export_selftest(out, spec)),  # c/selftest.c from io.npz
        ("pte", lambda: export_pte(model, spec, out)),
        ("tflite", lambda: export_tflite(model, spec, out)),
    )
    for name, run in stages:
        start = time.perf_counter()
        skipped = run()
        if isinstance(skipped, mobile.Skipped):  # optional artifact: say why, time nothing
            report.skipped[skipped.artifact] = skipped.why
            # an earlier build's file would be hashed into this build's manifest, and run
            (out.root / skipped.artifact).unlink(missing_ok=True)
            continue
        report.seconds[name] = time.perf_counter() - start
    return report


def example_input(spec: Spec, batch: int = 2) -> torch.Tensor:
    return torch.zeros((batch,) + spec.input_shape)


def export_weights(model: nn.Module, out: BuildDir) -> None:
    """A plain state_dict of tensors: torch.load(..., weights_only=True) reads it."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    write_bytes(out.weights, _saved(torch.save, state))


def export_onnx(model: nn.Module, spec: Spec, facts: DataFacts, out: BuildDir) -> dict[int, float]:
    """model.onnx: named input/output, metadata, full check, one file; returns batch -> max diff."""
    import onnx

    dynamic = spec.export.dynamic_batch
    batch = 2 if dynamic else STATIC_BATCH
    native = max(spec.export.opset, NATIVE_OPSET)  # below 18 the exporter would keep 18 silently
    shapes = {FORWARD_ARG: {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}}
    if not dynamic:
        shapes = None
    try:
        with expected_warnings(EXPORTER_WARNINGS), _registry_noise_dropped():
            with contextlib.redirect_stdout(io.StringIO()):  # progress lines on failure
                program = torch.onnx.export(
                    model,
                    (example_input(spec, batch),),
                    None,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    opset_version=native,
                    dynamic_shapes=shapes,
                    verbose=False,
                )
            proto = program.model_proto
    except Exception as exc:  # the exporter raises many types; name the stage and the layer
        raise failure("onnx", exc, spec, out) from exc

    written = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    if written != [native]:
        raise RuntimeFailure(
            f"export stage onnx: asked for opset {native}, the exporter wrote "
            f"{written}; use an opset it supports natively"
        )
    if spec.export.opset < native:
        proto = older_opset(proto, spec)
    meta = onnx_meta.describe(
        lenetc_version=__version__,
        spec_name=spec.name,
        spec_sha256=spec.sha256,
        dataset=facts.name,
        input_name=INPUT_NAME,
        sample_shape=spec.input_shape,
        dynamic_batch=dynamic,
        static_batch=STATIC_BATCH,
        input_range=facts.input_range,
        mean=facts.mean,
        std=facts.std,
        output_name=OUTPUT_NAME,
        last_layer_type=spec.nodes[-1].type,
        labels=facts.labels,
    )
    for node in proto.graph.node:
        # the exporter's debug notes carry this machine's paths (stack traces): not for embedding
        del node.metadata_props[:]
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = f"{spec.class_name}, compiled by lenetc {__version__} from {spec.name}"
    for tensor in proto.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise RuntimeFailure(f"export stage onnx: initializer {tensor.name} is external data")
    data = proto.SerializeToString()  # raises past 2 GiB, which is where external data begins
    try:
        onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    except Exception as exc:
        raise failure("onnx-check", exc, spec, out) from exc
    diffs = prove_batches(model, data, spec, PROOF_BATCHES if dynamic else (STATIC_BATCH,))
    write_bytes(out.onnx, data)
    return diffs


def older_opset(proto, spec: Spec):
    """The opset-18 export converted down to export.onnx.opset; refused (exit 2) with the
    operator named when that opset cannot express it."""
    try:
        return onnx_opset.convert(proto, spec.export.opset)
    except onnx_opset.OpsetRefused as exc:
        raise SpecError(
            Problem(
                f"export.onnx.opset: opset {spec.export.opset} cannot express this network: {exc}",
                Location(str(spec.path), spec.export.opset_line),
                hint=f"use opset: {NATIVE_OPSET} or higher",
            )
        ) from None


def export_pte(model: nn.Module, spec: Spec, out: BuildDir) -> mobile.Skipped | None:
    """model.pte (ExecuTorch, XNNPACK), when export.executorch.enabled and executorch is here."""
    if not spec.export.executorch:
        return mobile.Skipped("model.pte", "export.executorch.enabled is false")
    return mobile.export_pte(
        model, example_input(spec), out.pte, spec.export.executorch_max_batch, spec, out
    )


def export_tflite(model: nn.Module, spec: Spec, out: BuildDir) -> mobile.Skipped | None:
    """model.tflite (LiteRT, batch 1), when export.litert.enabled and litert-torch is here."""
    if not spec.export.litert:
        return mobile.Skipped("model.tflite", "export.litert.enabled is false")
    return mobile.export_tflite(model, example_input(spec, 1), out.tflite, spec, out)


def prove_batches(
    model: nn.Module, data: bytes, spec: Spec, batches: tuple[int, ...]
) -> dict[int, float]:
    """Run the ONNX bytes in onnxruntime at each batch size; shapes must match torch exactly.

    Parity against tolerances is verify's job (exit 3); here a wrong batch axis or a wildly
    different output (> 1e-3) means the export itself is broken (exit 1).
    """
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(spec.train.seed)
    diffs = {}
    for batch in batches:
        x = rng.standard_normal((batch,) + spec.input_shape).astype(np.float32)
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        try:
            got = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        except Exception as exc:
            raise RuntimeFailure(
                f"export stage onnx-batch: onnxruntime cannot run batch {batch}: "
                f"{str(exc).strip().splitlines()[0]}"
            ) from exc
        if got.shape != want.shape:
            raise RuntimeFailure(
                f"export stage onnx-batch: batch {batch} gives shape {got.shape} in "
                f"onnxruntime, {tuple(want.shape)} in torch"
            )
        diffs[batch] = float(np.abs(got - want).max())
        if not diffs[batch] <= 1e-3:
            raise RuntimeFailure(
                f"export stage onnx-batch: batch {batch}: max |torch - onnxruntime| = "
                f"{diffs[batch]:.2e}, the exported graph computes something else"
            )
    return diffs


def export_torchscript(model: nn.Module, spec: Spec, out: BuildDir) -> None:
    """model.torchscript.pt: script (default) or trace, as export.torchscript.mode says."""
    try:
        with expected_warnings(TORCHSCRIPT_WARNINGS):
            if spec.export.torchscript_mode == "trace":
                scripted = torch.jit.trace(model, example_input(spec))
            else:
                scripted = torch.jit.script(model)
            data = _saved(torch.jit.save, scripted)
    except Exception as exc:
        raise failure(f"torchscript-{spec.export.torchscript_mode}", exc, spec, out) from exc
    write_bytes(out.torchscript, data)


def export_program(model: nn.Module, spec: Spec, out: BuildDir) -> None:
    """model.pt2: a torch.export program with a dynamic batch axis (TorchScript's successor)."""
    shapes = {FORWARD_ARG: {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}}
    try:
        with expected_warnings(EXPORTER_WARNINGS):
            program = torch.export.export(model, (example_input(spec),), dynamic_shapes=shapes)
            for node in program.graph.nodes:  # stack traces name this machine's folders
                node.meta.pop("stack_trace", None)
            data = _saved(torch.export.save, program)
    except Exception as exc:
        raise failure("pt2", exc, spec, out) from exc
    write_bytes(out.pt2, data)


def export_golden(model: nn.Module, spec: Spec, facts: DataFacts, out: BuildDir) -> None:
    batch = None if spec.export.dynamic_batch else STATIC_BATCH
    try:
        bundle = golden_io.make_bundle(model, spec, facts.x_test, facts.y_test, batch=batch)
    except Exception as exc:
        raise failure("golden", exc, spec, out) from exc
    golden_io.write_bundle(bundle, out, INPUT_NAME, OUTPUT_NAME)


def _saved(save: Callable[[object, io.BytesIO], object], obj: object) -> bytes:
    """Serialize through a buffer, not a path: torch.save and torch.export.save name the zip's
    records after the file, so saving to a temporary name would make two builds' bytes differ
    (and torch.export.save warns when a path does not end in .pt2)."""
    buffer = io.BytesIO()
    save(obj, buffer)
    return buffer.getvalue()


class _DropRegistryNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not REGISTRY_NOISE.search(record.getMessage())


@contextlib.contextmanager
def _registry_noise_dropped() -> Iterator[None]:
    logger = logging.getLogger(REGISTRY_LOGGER)
    drop = _DropRegistryNoise()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)
