"""The spec's train:, export:, verify:, target: and quantize: sections, as frozen dataclasses.

Takes the YAML mappings (with lines) and a Reporter; returns TrainConfig, ExportConfig,
VerifyConfig, TargetConfig and QuantizeConfig (None without a quantize: section) with every default
filled in. Problems are recorded, not raised, so that a spec with a bad layer and a bad learning
rate reports both in one run. No torch import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .fields import (
    FieldError,
    Reporter,
    Section,
    boolean,
    choice,
    describe,
    int_list,
    integer,
    number,
    text,
)
from .yamlsafe import YList, YMap

DATASETS = ("digits", "idx", "npz", "npy", "synthetic")
DEVICES = ("auto", "cpu", "cuda")
LOSSES = ("cross_entropy", "nll", "mse")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "step", "cosine")
PROVIDERS = ("cpu", "cuda")
QUANT_SCHEMES = ("int8",)
# onnxruntime.quantization's calibrators (CalibrationMethod.MinMax / Percentile / Entropy)
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
# Inclusive range of export.onnx.opset. 18 to 25: the dynamo exporter of torch 2.13 writes them
# as asked, for every layer kind (from 26 up its up-conversion emits Gelu-20 under a newer domain
# version and the checker rejects it). 13 to 17: the exporter itself ignores them (onnxscript's
# torch_2_6.convert_version logs "Conversion to opset < 18 is not supported" and keeps 18), so
# lenetc exports 18 and converts down with onnx.version_converter (export/onnx_opset.py), refusing
# an operator that the older opset cannot express. tests/test_export.py keeps the range honest.
OPSETS = (13, 25)
NATIVE_OPSET = 18  # the lowest opset the exporter writes itself
DEFAULT_OPSET = 18
MAX_PTE_BATCH = 65536  # export.executorch.max_batch: ExecuTorch plans its input and output for it


@dataclass(frozen=True)
class DatasetConfig:
    name: str = "digits"
    fit: str = "resize"  # how samples meet the spec's input size: resize | pad | none
    path: str | None = None  # npz: the file
    x: str | None = None  # npy: the inputs (N, ...), read memory-mapped
    y: str | None = None  # npy: the labels (N,)
    x_test: str | None = None  # npy: an optional test set of its own
    y_test: str | None = None
    train_images: str | None = None  # idx: MNIST-format files
    train_labels: str | None = None
    test_images: str | None = None
    test_labels: str | None = None
    num_classes: int | None = None  # synthetic; None = the model's output count
    samples: int = 1024  # synthetic
    test_split: float = 0.2  # held out when the dataset has no test files of its own
    line: int = 0


@dataclass(frozen=True)
class OptimizerConfig:
    type: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass(frozen=True)
class ScheduleConfig:
    type: str = "none"
    step_size: int = 10
    gamma: float = 0.1


@dataclass(frozen=True)
class TrainConfig:
    dataset: DatasetConfig = DatasetConfig()
    epochs: int = 10
    batch_size: int = 64
    loss: str = "cross_entropy"
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    validation_split: float = 0.1
    patience: int | None = None  # early stopping on validation loss; None = off
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda (train/device.py picks and says why)
    workers: int = 0  # DataLoader worker processes; 0 = batches are read in the training process


@dataclass(frozen=True)
class ExportConfig:
    opset: int = DEFAULT_OPSET
    dynamic_batch: bool = True
    torchscript_mode: str = "script"
    opset_line: int = 0  # where export.onnx.opset is written (0: the default), for a refusal
    executorch: bool = True  # model.pte, when the executorch package is installed
    executorch_max_batch: int = 1024  # ExecuTorch plans memory for this batch; larger run in chunks
    litert: bool = True  # model.tflite, when litert-torch is installed


@dataclass(frozen=True)
class VerifyConfig:
    atol: float = 1e-5
    rtol: float = 1e-4
    batch_sizes: tuple[int, ...] = (1, 3, 64)
    providers: tuple[str, ...] = ("cpu", "cuda")
    # runtimes/ registry names or row names (tract, openvino, onnxruntime[cpu] ...); () = every
    # registered runtime. Checked against the registry when verify runs (spec/ cannot see it).
    runtimes: tuple[str, ...] = ()
    runtimes_line: int = 0


@dataclass(frozen=True)
class TargetConfig:
    """target: the memory of the part the C target must fit, in bytes (None: not stated), and
    the YAML lines that stated it (for `check`'s refusal)."""

    flash: int | None = None
    ram: int | None = None
    line: int = 0
    flash_line: int = 0
    ram_line: int = 0


MAX_BYTES = 1 << 40  # a terabyte: beyond any part's memory, and any float's exactness
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1024,
    "kib": 1024,
    "mb": 1024**2,
    "mib": 1024**2,
    "gb": 1024**3,
    "gib": 1024**3,
}


def byte_size(value: Any) -> int:
    """A memory size: bytes as an integer, or a number and a unit (256KB, 1 MB, 64KiB); a
    kilobyte is 1024 bytes, as microcontroller datasheets count."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_BYTES:
        return value
    found = (
        re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
        if isinstance(value, str)
        else None
    )
    unit = found[2].lower() if found else ""
    if found is None or unit not in _UNITS or not 1 <= float(found[1]) * _UNITS[unit] <= MAX_BYTES:
        raise FieldError(
            f"expected a size such as 256KB, 1MB or 65536 (bytes), found {describe(value)}",
            hint="units: B, KB (1024 bytes), MB (1024 KB), GB; KiB, MiB and GiB are the same",
        )
    return int(float(found[1]) * _UNITS[unit])


def read_target(data: Any, report: Reporter, line: int) -> TargetConfig:
    s = Section(data, ["flash", "ram"], report, where="target", line=line)
    return TargetConfig(
        flash=s.get("flash", byte_size, None),
        ram=s.get("ram", byte_size, None),
        line=line,
        flash_line=s.line("flash") if s.has("flash") else 0,
        ram_line=s.line("ram") if s.has("ram") else 0,
    )


@dataclass(frozen=True)
class QuantizeConfig:
    """quantize: int8 with weights symmetric per output channel, activations per tensor."""

    scheme: str = "int8"
    samples: int = 512  # calibration samples, drawn from the training split only
    method: str = "minmax"
    max_drop: float = 1.0  # percentage points of test accuracy int8 may lose against float
    line: int = 0  # the quantize: key's line (0: asked by --int8)
    samples_line: int = 0
    max_drop_line: int = 0


def _fields(cls: type) -> list[str]:
    return [f for f in cls.__dataclass_fields__ if f != "line"]


def read_train(data: Any, report: Reporter, line: int) -> TrainConfig:
    s = Section(
        data,
        [
            "dataset",
            "epochs",
            "batch_size",
            "loss",
            "optimizer",
            "schedule",
            "validation_split",
            "early_stopping",
            "seed",
            "device",
            "workers",
        ],
        report,
        where="train",
        line=line,
    )
    d = TrainConfig()
    cfg = TrainConfig(
        dataset=_read_dataset(s.raw("dataset"), report, s.line("dataset")),
        epochs=s.get("epochs", integer(1, 100_000), d.epochs),
        batch_size=s.get("batch_size", integer(1, 65_536), d.batch_size),
        loss=s.get("loss", choice(*LOSSES), d.loss),
        optimizer=_read_optimizer(s.raw("optimizer"), report, s.line("optimizer")),
        schedule=_read_schedule(s.raw("schedule"), report, s.line("schedule")),
        validation_split=s.get("validation_split", number(0.0, 0.5), d.validation_split),
        patience=_read_early_stopping(s.raw("early_stopping"), report, s.line("early_stopping")),
        seed=s.get("seed", integer(0, 2**32 - 1), d.seed),
        device=s.get("device", choice(*DEVICES), d.device),
        workers=s.get("workers", integer(0, 256), d.workers),
    )
    if cfg.patience is not None and cfg.validation_split == 0:
        s.fail(
            "train.early_stopping: watches the validation loss, but train.validation_split is 0",
            s.line("early_stopping"),
            hint="set validation_split: 0.1, or remove early_stopping",
        )
    return cfg


def _read_dataset(data: Any, report: Reporter, line: int) -> DatasetConfig:
    s = Section(data, _fields(DatasetConfig), report, where="train.dataset", line=line)
    d = DatasetConfig()
    name = s.get("name", choice(*DATASETS), d.name)
    path = text(4096)
    cfg = DatasetConfig(
        name=name or d.name,
        fit=s.get("fit", choice("resize", "pad", "none"), d.fit),
        path=s.get("path", path, None),
        x=s.get("x", path, None),
        y=s.get("y", path, None),
        x_test=s.get("x_test", path, None),
        y_test=s.get("y_test", path, None),
        train_images=s.get("train_images", path, None),
        train_labels=s.get("train_labels", path, None),
        test_images=s.get("test_images", path, None),
        test_labels=s.get("test_labels", path, None),
        num_classes=s.get("num_classes", integer(2, 100_000), d.num_classes),
        samples=s.get("samples", integer(2, 10_000_000), d.samples),
        test_split=s.get("test_split", number(0.0, 0.9, lo_open=True), d.test_split),
        line=s.line(),
    )
    needs = {"npz": ["path"], "idx": ["train_images", "train_labels"], "npy": ["x", "y"]}
    needs = needs.get(cfg.name, [])
    for key in needs:
        if getattr(cfg, key) is None:
            s.fail(
                f"train.dataset: {cfg.name} needs '{key}'",
                s.line(),
                hint=f"add {key}: <file> (relative to the spec's folder)",
            )
    if cfg.name == "idx" and (cfg.test_images is None) != (cfg.test_labels is None):
        s.fail("train.dataset: idx needs both test_images and test_labels, or neither", s.line())
    if cfg.name == "npy" and (cfg.x_test is None) != (cfg.y_test is None):
        s.fail("train.dataset: npy needs both x_test and y_test, or neither", s.line())
    return cfg


def _read_optimizer(data: Any, report: Reporter, line: int) -> OptimizerConfig:
    s = Section(data, _fields(OptimizerConfig), report, where="train.optimizer", line=line)
    d = OptimizerConfig()
    kind = s.get("type", choice(*OPTIMIZERS), d.type)
    if kind != "sgd":
        for key in ("momentum", "nesterov"):
            if s.has(key):
                s.fail(
                    f"train.optimizer.{key}: applies to sgd, not {kind}",
                    s.line(key),
                    hint=f"remove {key}",
                )
    betas = s.get("betas", int_list(number(0.0, 1.0, what="a beta"), 2, 2), d.betas)
    cfg = OptimizerConfig(
        type=kind or d.type,
        lr=s.get("lr", number(0.0, 10.0, lo_open=True, what="a learning rate"), d.lr),
        momentum=s.get("momentum", number(0.0, 1.0), d.momentum if kind == "sgd" else 0.0),
        nesterov=s.get("nesterov", boolean, d.nesterov),
        weight_decay=s.get("weight_decay", number(0.0, 1.0), d.weight_decay),
        betas=tuple(betas) if betas else d.betas,
    )
    if cfg.nesterov and cfg.momentum == 0:
        s.fail(
            "train.optimizer.nesterov: needs a momentum above 0",
            s.line("nesterov"),
            hint="set momentum: 0.9",
        )
    return cfg


def _read_schedule(data: Any, report: Reporter, line: int) -> ScheduleConfig:
    if isinstance(data, str):  # `schedule: cosine` is shorthand for {type: cosine}
        data = YMap(type=data)
        data.line, data.key_lines = line, {"type": line}
    s = Section(data, _fields(ScheduleConfig), report, where="train.schedule", line=line)
    d = ScheduleConfig()
    return ScheduleConfig(
        type=s.get("type", choice(*SCHEDULES), d.type),
        step_size=s.get("step_size", integer(1, 100_000), d.step_size),
        gamma=s.get("gamma", number(0.0, 1.0, lo_open=True), d.gamma),
    )


def _read_early_stopping(data: Any, report: Reporter, line: int) -> int | None:
    if data is None:
        return None
    s = Section(data, ["patience"], report, where="train.early_stopping", line=line)
    return s.get("patience", integer(1, 100_000))


def read_export(data: Any, report: Reporter, line: int) -> ExportConfig:
    s = Section(
        data, ["onnx", "torchscript", "executorch", "litert"], report, where="export", line=line
    )
    d = ExportConfig()
    onnx = Section(
        s.raw("onnx"), ["opset", "dynamic_batch"], report, where="export.onnx", line=s.line("onnx")
    )
    ts = Section(
        s.raw("torchscript"),
        ["mode"],
        report,
        where="export.torchscript",
        line=s.line("torchscript"),
    )
    lo, hi = OPSETS
    opset = onnx.get("opset", integer(1, 10_000, "an opset number"), d.opset)
    if opset is not None and not lo <= opset <= hi:
        onnx.fail(
            f"export.onnx.opset: {opset} is outside the supported range {lo} to {hi}",
            onnx.line("opset"),
            hint=f"use opset: {DEFAULT_OPSET}",
        )
    pte = Section(
        s.raw("executorch"),
        ["enabled", "max_batch"],
        report,
        where="export.executorch",
        line=s.line("executorch"),
    )
    tflite = Section(
        s.raw("litert"), ["enabled"], report, where="export.litert", line=s.line("litert")
    )
    return ExportConfig(
        opset=opset or d.opset,
        dynamic_batch=onnx.get("dynamic_batch", boolean, d.dynamic_batch),
        torchscript_mode=ts.get("mode", choice("script", "trace"), d.torchscript_mode),
        opset_line=onnx.line("opset") if onnx.has("opset") else 0,
        executorch=pte.get("enabled", boolean, d.executorch),
        executorch_max_batch=pte.get(
            "max_batch", integer(1, MAX_PTE_BATCH, "a batch size"), d.executorch_max_batch
        ),
        litert=tflite.get("enabled", boolean, d.litert),
    )


def read_verify(data: Any, report: Reporter, line: int) -> VerifyConfig:
    known = [f for f in _fields(VerifyConfig) if f != "runtimes_line"]
    s = Section(data, known, report, where="verify", line=line)
    d = VerifyConfig()
    tol = number(0.0, 1.0)
    providers = s.get("providers", _providers, d.providers)
    return VerifyConfig(
        atol=s.get("atol", tol, d.atol),
        rtol=s.get("rtol", tol, d.rtol),
        batch_sizes=s.get("batch_sizes", int_list(integer(1, 4096), 1, 16), d.batch_sizes),
        providers=providers,
        runtimes=s.get("runtimes", _runtime_names, d.runtimes),
        runtimes_line=s.line("runtimes") if s.has("runtimes") else 0,
    )


def _providers(value: Any) -> tuple[str, ...]:
    if not isinstance(value, YList):
        value = [value]
    out = tuple(choice(*PROVIDERS)(v) for v in value)
    return tuple(dict.fromkeys(out))


def _runtime_names(value: Any) -> tuple[str, ...]:
    """verify.runtimes: one name or a list of them; which names exist is the registry's business."""
    if not isinstance(value, YList):
        value = [value]
    names = []
    for v in value:
        if not isinstance(v, str) or not re.fullmatch(
            r"[a-z][a-z0-9.+_\-]*(\[[a-z0-9+,\-]+\])?", v
        ):
            raise FieldError(
                f"expected runtime names such as tract or onnxruntime[cpu], found {describe(v)}",
                hint="lenetc verify --help lists them; leave verify.runtimes out for every one",
            )
        names.append(v)
    return tuple(dict.fromkeys(names))


def read_quantize(data: Any, report: Reporter, line: int) -> QuantizeConfig | None:
    """quantize: {scheme, calibration: {samples, method}, max_drop}; None when absent."""
    if data is None:
        return None
    if isinstance(data, str):  # `quantize: int8` is shorthand for {scheme: int8}
        data = YMap(scheme=data)
        data.line, data.key_lines = line, {"scheme": line}
    s = Section(data, ["scheme", "calibration", "max_drop"], report, where="quantize", line=line)
    d = QuantizeConfig()
    cal = Section(
        s.raw("calibration"),
        ["samples", "method"],
        report,
        where="quantize.calibration",
        line=s.line("calibration"),
    )
    return QuantizeConfig(
        scheme=s.get("scheme", choice(*QUANT_SCHEMES), d.scheme) or d.scheme,
        samples=cal.get("samples", integer(1, 1_000_000), d.samples) or d.samples,
        method=cal.get("method", choice(*CALIBRATION_METHODS), d.method) or d.method,
        max_drop=s.get("max_drop", number(0.0, 100.0, what="percentage points"), d.max_drop),
        line=line,
        samples_line=cal.line("samples") if cal.has("samples") else line,
        max_drop_line=s.line("max_drop") if s.has("max_drop") else line,
    )
