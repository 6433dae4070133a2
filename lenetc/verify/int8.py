"""Stage 6b, verify (int8): a build folder with model.int8.onnx -> the int8 proof.

Takes the build folder (spec, model.onnx, model.int8.onnx, heldout.npz, calibration.npz) and the
verify cases; returns an Int8Report:
- rows: each runtime that loads model.int8.onnx (ONNX Runtime, tract, OpenVINO) and the C target's
  int8 variant, against the numpy integer reference (quant/reference.py) in quantization steps of
  the output: |runtime - reference| / output scale. The C variant computes the reference's
  fixed-point arithmetic and must be exact (0 steps). ONNX runtimes are compared with the same
  reference rounding as ONNX Runtime does (rounding="float": a float32 scale per requantization,
  half to even); 1 step is allowed for a float32 product rounded another way inside a runtime.
  Saturating kernels (s8s8 on AVX2 without VNNI) are several steps off and fail.
- task level, on the test split (heldout.npz): float accuracy (ONNX Runtime on model.onnx), int8
  accuracy (the reference), the drop in percentage points against quantize.max_drop, and argmax
  agreement with float.
- per-layer SQNR on the calibration samples, and a hint when one layer dominates the loss.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..artifacts import BuildDir
from ..check.shapes import check
from ..quant.params import load_quant_model
from ..quant.reference import integer_forward
from ..quant.sqnr import dominant, layer_sqnr
from ..runtimes import matches
from ..runtimes.base import Runtime, RuntimeProblem, first_line
from ..spec.config import QuantizeConfig
from ..spec.load import Spec
from .results import FAIL, PASS, UNAVAILABLE, WARN, Case

ARTIFACT = "model.int8.onnx"
ONNX_STEPS = 1.0  # float vs fixed-point rounding of each requantization
EXACT = 0.0


@dataclass
class Int8Row:
    runtime: str
    artifact: str
    status: str = PASS
    reason: str | None = None
    tolerance_steps: float = ONNX_STEPS
    max_steps: float | None = None
    elements_off: int = 0  # elements not equal to the reference
    elements: int = 0
    accuracy: float | None = None  # on the held-out cases
    rounding: str = "fixed"  # the reference's rounding this row is held to


@dataclass
class Int8Report:
    artifact: str
    output_scale: float
    max_drop: float
    rows: list[Int8Row] = field(default_factory=list)
    test_samples: int = 0
    float_accuracy: float | None = None
    int8_accuracy: float | None = None
    drop_points: float | None = None
    argmax_agreement: float | None = None
    sqnr: list[dict] = field(default_factory=list)
    calibration_samples: int = 0
    hint: str | None = None
    bytes: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        over = self.drop_points is not None and self.drop_points > self.max_drop
        return not over and all(r.status != FAIL for r in self.rows)

    def failures(self) -> list[str]:
        lines = []
        for r in self.rows:
            if r.status == FAIL:
                what = r.reason or (
                    f"{r.max_steps:.2f} quantization steps from the integer reference "
                    f"(tolerance {r.tolerance_steps:g}; {r.elements_off}/{r.elements} elements "
                    f"differ; output scale {self.output_scale:.4g})"
                )
                lines.append(f"int8 {r.runtime} ({r.artifact}): {what}")
        if self.drop_points is not None and self.drop_points > self.max_drop:
            lines.append(
                f"int8 accuracy drop {self.drop_points:.2f} points (float "
                f"{self.float_accuracy:.2%}, int8 {self.int8_accuracy:.2%} on "
                f"{self.test_samples} test samples) is over quantize.max_drop {self.max_drop:g}"
            )
        return lines


def int8_rows(out: BuildDir, spec: Spec, selectors: tuple[str, ...] = ()) -> list[Runtime]:
    """The adapters that run model.int8.onnx, and the C target's int8 variant where built;
    narrowed, as the float rows are, to those `selectors` (--runtime, verify.runtimes) name."""
    from ..runtimes.c import CInt8Target
    from ..runtimes.onnxruntime import OnnxRuntime
    from ..runtimes.openvino import OpenVino
    from ..runtimes.tract import Tract

    rows: list[Runtime] = [
        OnnxRuntime(out, spec, "cpu"),
        Tract(out, spec),
        OpenVino(out, spec, {}),
        OpenVino(out, spec, {"INFERENCE_PRECISION_HINT": "f32"}),
    ]
    for row, kind in zip(rows, ("onnxruntime", "tract", "openvino", "openvino")):
        row.artifact, row.kind = ARTIFACT, kind
    c = CInt8Target(out, spec)
    c.kind = "c"
    rows.append(c)
    if not selectors:
        return rows
    return [r for r in rows if any(matches(r, s) for s in selectors)]


def verify_int8(
    out: BuildDir,
    spec: Spec,
    cases: list[Case],
    selectors: tuple[str, ...] = (),
    require: tuple[str, ...] = (),
) -> Int8Report | None:
    if not out.int8_onnx.is_file():
        return None
    cfg = spec.quantize or QuantizeConfig()
    qm = load_quant_model(out.int8_onnx, check(spec))
    scale = qm.output.out.scale if qm.output.out else 1.0
    report = Int8Report(ARTIFACT, scale, cfg.max_drop)
    refs = {
        "fixed": [integer_forward(qm, c.x)[0] for c in cases],
        "float": [integer_forward(qm, c.x, "float")[0] for c in cases],
    }
    for runtime in int8_rows(out, spec, selectors + require):
        c_variant = runtime.artifact != ARTIFACT  # computes the reference's fixed point
        rounding = "fixed" if c_variant else "float"
        row = _row(runtime, cases, refs[rounding], scale, EXACT if c_variant else ONNX_STEPS)
        row.rounding = rounding
        required = next((s for s in require if matches(runtime, s)), None)
        if row.status == UNAVAILABLE and required is not None:
            row.status = FAIL
            row.reason = f"required (--require {required}) but unavailable: {row.reason}"
        elif row.status == UNAVAILABLE and _ci() and runtime.expected_in_ci:
            row.status = FAIL
            row.reason = f"CI=true, where every runtime is installed, but unavailable: {row.reason}"
        report.rows.append(row)
    _task_level(out, qm, report)
    if out.calibration.is_file():
        with np.load(out.calibration) as cal:
            x_cal = cal["x"].astype(np.float32)
        rows = layer_sqnr(out.onnx, qm, x_cal)
        report.calibration_samples = len(x_cal)
        report.sqnr = [  # None: no noise at all (JSON has no infinity)
            {
                "layers": r.layers,
                "type": r.type,
                "line": r.line,
                "sqnr_db": r.sqnr_db if np.isfinite(r.sqnr_db) else None,
                "lost_db": r.lost_db if np.isfinite(r.lost_db) else 0.0,
            }
            for r in rows
        ]
        report.hint = dominant(rows)
    report.bytes = {"model.onnx": out.onnx.stat().st_size, ARTIFACT: out.int8_onnx.stat().st_size}
    return report


def _telling_line(exc: BaseException) -> str:
    """The line of a long library message that says what went wrong (OpenVINO opens with a
    source location; its reason comes lines later)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    told = [ln for ln in lines if not ln.startswith(("Exception from", "Check "))]
    return told[-1][:200] if told else ""


def _ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _row(runtime: Runtime, cases, refs, scale: float, tolerance: float) -> Int8Row:
    row = Int8Row(runtime.name, runtime.artifact, tolerance_steps=tolerance)
    why = runtime.unavailable()
    if why is not None:
        row.status, row.reason = UNAVAILABLE, why
        return row
    try:
        runtime.load()
        got = [np.asarray(runtime.run(c.x)[0], np.float64) for c in cases]
    except Exception as exc:
        reason = str(exc) if isinstance(exc, RuntimeProblem) else first_line(exc)
        said = _telling_line(exc.__cause__ or exc)
        if said and said not in reason:
            reason = f"{reason.rstrip(':')}: {said}"
        # OpenVINO's default (bf16 where the CPU has it) has no kernel for some QDQ graphs: the
        # runtime's limit, shown, not a wrong answer; its f32 row still has to pass.
        row.status = WARN if "openvino" in runtime.name and runtime.name.endswith("[cpu]") else FAIL
        row.reason = reason
        return row
    worst, off, total, right, seen = 0.0, 0, 0, 0, 0
    for case, ref, y in zip(cases, refs, got):
        if y.shape != ref.shape:
            row.status, row.reason = FAIL, f"output shape {y.shape}, expected {ref.shape}"
            return row
        steps = np.abs(y - ref) / scale
        worst = max(worst, float(np.nan_to_num(steps, nan=np.inf).max()))
        off += int((steps > 0.5).sum())
        total += steps.size
        if case.y is not None:
            right += int((y.argmax(axis=1) == case.y).sum())
            seen += len(case.y)
    # 1e-3: a dequantized value is (q - z) * s in float32, exact to a few ulps of the step
    row.max_steps, row.elements_off, row.elements = round(worst, 4), off, total
    row.accuracy = right / seen if seen else None
    if worst > tolerance + 1e-3:
        row.status = FAIL
    return row


def _task_level(out: BuildDir, qm, report: Int8Report) -> None:
    """Float and int8 accuracy on the whole test split that heldout.npz keeps."""
    import onnxruntime as ort

    if not out.heldout.is_file():
        return
    with np.load(out.heldout) as held:
        x, y = held["x"].astype(np.float32), held["y"]
    if not len(y):
        return
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(out.onnx), options)
    name = session.get_inputs()[0].name
    float_out = np.concatenate(
        [session.run(None, {name: x[i : i + 256]})[0] for i in range(0, len(x), 256)]
    )
    int8_out = np.concatenate(
        [integer_forward(qm, x[i : i + 256])[0] for i in range(0, len(x), 256)]
    )
    if float_out.ndim != 2:
        return
    f_pick, q_pick = float_out.argmax(axis=1), int8_out.argmax(axis=1)
    report.test_samples = len(y)
    report.float_accuracy = float((f_pick == y).mean())
    report.int8_accuracy = float((q_pick == y).mean())
    report.drop_points = round(100 * (report.float_accuracy - report.int8_accuracy), 4)
    report.argmax_agreement = float((f_pick == q_pick).mean())
