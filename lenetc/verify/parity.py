"""Stage 6b, verify: a build folder -> a parity report of every artifact against the torch module.

Takes the build folder (spec.yaml, model.py, weights.pt, heldout.npz and the exported artifacts)
and the tolerances; returns a Report and writes it to verify.json. The reference is the generated
module with the trained weights, evaluated in float64 on the CPU. Every row runtimes.plan chooses
from the registry (torch eager, TorchScript, torch.export, ONNX Runtime per execution provider, the
ONNX reference evaluator, tract, OpenVINO, ONNX Runtime in Node.js and Chromium, libtorch in C++;
narrowed by --runtime or verify.runtimes) runs the same inputs: seeded random ones and real
held-out samples, at each of the spec's batch sizes. Per runtime and output we keep the max
absolute and relative error, the smallest atol (and rtol) that would pass, argmax agreement and
accuracy on the real samples, and PASS/FAIL against atol/rtol; a failing runtime gets its first
diverging layer (divergence.py).
A runtime that cannot run here is "unavailable" with the reason, a failure when it is required
(--require) or in CI (CI=true); one that misses the tolerance only because it chose a lower
precision by itself (OpenVINO's bf16 default) is a WARN unless required.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from ..artifacts import BuildDir, load_module_class, load_pt, write_json
from ..errors import RuntimeFailure
from ..export.exporters import OUTPUT_NAME
from ..runtimes import matches, plan
from ..runtimes.base import Runtime, RuntimeProblem, first_line
from ..spec.load import Spec, load_spec
from .divergence import locate
from .int8 import verify_int8
from .results import FAIL, UNAVAILABLE, WARN, Case, OutputResult, Report, RuntimeResult
from .table import to_json


def reference_model(out: BuildDir, spec: Spec) -> torch.nn.Module:
    cls = load_module_class(out.model_py, spec.class_name)
    model = cls()
    model.load_state_dict(load_pt(out.weights))
    return model.eval()


def verify_build(
    root,
    atol: float | None = None,
    rtol: float | None = None,
    require: tuple[str, ...] = (),
    write: bool = True,
    runtimes: tuple[str, ...] = (),
) -> Report:
    started = time.perf_counter()
    out = BuildDir(Path(root)).require_model()
    spec = load_spec(out.spec)
    atol = spec.verify.atol if atol is None else atol
    rtol = spec.verify.rtol if rtol is None else rtol
    try:  # torch raises many types for a truncated or foreign file; integrity.py runs first
        model64 = reference_model(out, spec).double()
        weights = {k: v.numpy() for k, v in load_pt(out.weights).items()}
    except RuntimeFailure:
        raise
    except Exception as exc:
        why = first_line(exc)
        raise RuntimeFailure(f"cannot load {out.weights} into model.py: {why}") from None
    try:
        cases = make_cases(out, spec)
    except Exception as exc:
        raise RuntimeFailure(f"cannot read {out.heldout}: {first_line(exc)}") from None
    with torch.no_grad():
        refs = [_outputs(model64(torch.from_numpy(c.x).double())) for c in cases]
    rows = _plan(out, spec, runtimes, require)
    report = Report(
        build=str(out.root),
        spec_file=str(out.spec),
        atol=atol,
        rtol=rtol,
        batch_sizes=list(spec.verify.batch_sizes),
        inputs=[c.label for c in cases],
        reference="torch float64 on the CPU (model.py + weights.pt)",
        reference_accuracy=_accuracy(cases, refs),
        required=list(require),
    )
    for runtime in rows:
        t0 = time.perf_counter()
        result, got = check_runtime(runtime, cases, refs, atol, rtol, require)
        if result.status == FAIL and result.outputs:
            worst = _worst_case(cases, refs, got, atol, rtol)
            result.divergence = locate(runtime, spec, model64, weights, worst.x, atol, rtol)
        if result.outputs:  # what the run showed beyond its outputs (a device against the host)
            result.notes = runtime.findings() + result.notes
        result.seconds = round(time.perf_counter() - t0, 3)
        report.runtimes.append(result)
    selectors = runtimes or spec.verify.runtimes
    report.int8 = verify_int8(out, spec, cases, selectors, require)
    report.seconds = round(time.perf_counter() - started, 3)
    if write:
        write_json(out.verify_json, to_json(report))
    return report


def _plan(out: BuildDir, spec: Spec, runtimes: tuple[str, ...], require: tuple[str, ...]):
    """The rows asked for: --runtime, else verify.runtimes, else every registered one."""
    if runtimes:
        return plan(out, spec, spec.verify.providers, runtimes, require)
    where = f"{out.spec}:{spec.verify.runtimes_line} verify.runtimes"
    return plan(out, spec, spec.verify.providers, spec.verify.runtimes, require, where)


def _ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def make_cases(out: BuildDir, spec: Spec) -> list[Case]:
    """Random and held-out inputs at every batch size; held-out samples do not repeat until used."""
    rng = np.random.default_rng(spec.train.seed)
    held = np.load(out.heldout) if out.heldout.is_file() else None
    cases, start = [], 0
    for batch in spec.verify.batch_sizes:
        cases.append(Case("random", rng.standard_normal((batch,) + spec.input_shape, np.float32)))
        if held is not None and len(held["x"]):
            idx = np.arange(start, start + batch) % len(held["x"])
            start += batch
            cases.append(Case("heldout", held["x"][idx].astype(np.float32), held["y"][idx]))
    return cases


def check_runtime(
    runtime: Runtime, cases: list[Case], refs: list, atol: float, rtol: float, require
) -> tuple[RuntimeResult, list]:
    """The runtime's row, and its outputs per case (empty when it could not run)."""
    result = RuntimeResult(runtime.name, runtime.artifact, runtime.device)
    required = next((s for s in require if matches(runtime, s)), None)
    why = runtime.unavailable()
    if why is not None:
        result.reason = why
        if required is not None:
            result.status = FAIL
            result.reason = f"required (--require {required}) but unavailable: {why}"
        elif _ci() and runtime.expected_in_ci:
            result.status = FAIL
            result.reason = f"CI=true, where every runtime is installed, but unavailable: {why}"
        else:
            result.status = UNAVAILABLE
        return result, []
    try:
        runtime.load()
    except RuntimeProblem as exc:
        result.status, result.reason = FAIL, str(exc)
        return result, []
    except Exception as exc:  # an adapter that did not expect this artifact: fail its row
        result.status = FAIL
        result.reason = f"cannot load {runtime.artifact}: {first_line(exc)}"
        return result, []
    try:
        got = run_cases(runtime, cases)
    except Exception as exc:  # a crash, a timeout: this row fails, the others still run
        result.status = FAIL
        result.reason = str(exc) if isinstance(exc, RuntimeProblem) else first_line(exc)
        return result, []
    names = _output_names(runtime, len(refs[0]) if refs else 1)
    stats: dict[int, _Stats] = {}
    for case, ref, out in zip(cases, refs, got):
        for i, want in enumerate(ref):
            acc = stats.setdefault(i, _Stats(OutputResult(names[i])))
            acc.add(case, want, out[i] if i < len(out) else None, atol, rtol)
    result.outputs = [stats[i].result for i in sorted(stats)]
    if not all(o.passed for o in result.outputs):
        result.status = FAIL
        if runtime.reduced_precision and required is None:
            result.status, result.reason = WARN, runtime.reduced_precision
    return result, got


def run_cases(runtime: Runtime, cases: list[Case]) -> list[list[np.ndarray]]:
    """Every case's outputs: all in one go where the runtime is another program, else case by
    case (in chunks of a static batch), naming the case that fails."""
    if runtime.runs_cases_at_once and not runtime.static_batch:
        return [[np.asarray(y) for y in ys] for ys in runtime.run_many([c.x for c in cases])]
    outputs = []
    for case in cases:
        try:
            outputs.append(run_batched(runtime, case.x))
        except Exception as exc:
            raise RuntimeProblem(f"failed on {case.label}: {first_line(exc)}") from exc
    return outputs


def run_batched(runtime: Runtime, x: np.ndarray) -> list[np.ndarray]:
    """Run x whole, or in padded chunks of the runtime's static batch when it has one."""
    b = runtime.static_batch
    if not b or b == len(x):
        return [np.asarray(y) for y in runtime.run(x)]
    chunks = []
    for i in range(0, len(x), b):
        part = x[i : i + b]
        pad = np.zeros((b - len(part),) + x.shape[1:], x.dtype)
        ys = runtime.run(np.concatenate([part, pad]))
        chunks.append([np.asarray(y)[: len(part)] for y in ys])
    return [np.concatenate(ys) for ys in zip(*chunks)]


class _Stats:
    """Accumulates one output's numbers over every case."""

    def __init__(self, result: OutputResult) -> None:
        self.result = result
        self.agree = self.correct = 0

    def add(self, case: Case, ref: np.ndarray, got, atol: float, rtol: float) -> None:
        r = self.result
        if got is None or got.shape != ref.shape:
            found = "nothing" if got is None else f"shape {tuple(got.shape)}"
            r.passed = False
            r.problem = r.problem or f"on {case.label}: expected shape {ref.shape}, found {found}"
            return
        diff = np.abs(got.astype(np.float64) - ref)
        mag = np.abs(ref)
        diff = np.where(np.isnan(diff), np.inf, diff)  # a NaN is as wrong as it gets
        bad = diff > atol + rtol * mag
        r.elements += diff.size
        r.out_of_tolerance += int(bad.sum())
        r.passed = r.passed and not bad.any()
        if diff.size and diff.max() >= r.max_abs:
            where = np.unravel_index(int(diff.argmax()), diff.shape)
            r.max_abs = float(diff.max())
            r.worst = f"{case.label}, element {[int(i) for i in where]}"
        big = mag >= max(atol, 1e-30)
        if big.any():
            r.max_rel = max(r.max_rel, float((diff[big] / mag[big]).max()))
        r.min_atol = max(r.min_atol, float((diff - rtol * mag).max(initial=0.0)))
        over = diff > atol
        if over.any():
            scale = mag[over]
            need = np.where(scale > 0, (diff[over] - atol) / np.maximum(scale, 1e-300), np.inf)
            r.min_rtol = max(r.min_rtol, float(need.max()))
        if case.y is not None and ref.ndim == 2:
            picked = got.argmax(axis=1)
            self.agree += int((picked == ref.argmax(axis=1)).sum())
            self.correct += int((picked == case.y).sum())
            r.samples += len(case.y)
            r.argmax_agreement = self.agree / r.samples
            r.accuracy = self.correct / r.samples


def _worst_case(cases, refs, outputs, atol: float, rtol: float) -> Case:
    """The case whose first output exceeds its tolerance by the most: the one to localize on."""
    best, best_excess = cases[0], -np.inf
    for case, ref, out in zip(cases, refs, outputs):
        if not out:
            return case
        got = np.asarray(out[0]).astype(np.float64)
        if got.shape != ref[0].shape:
            return case
        excess = np.nan_to_num(np.abs(got - ref[0]) - (atol + rtol * np.abs(ref[0])), nan=np.inf)
        if excess.max() > best_excess:
            best, best_excess = case, float(excess.max())
    return best


def _outputs(y) -> list[np.ndarray]:
    return [t.numpy() for t in (y if isinstance(y, (tuple, list)) else [y])]


def _output_names(runtime: Runtime, n: int) -> list[str]:
    model = getattr(runtime, "model", None)
    if model is not None and len(model.graph.output) == n:
        return [o.name for o in model.graph.output]
    return [OUTPUT_NAME] if n == 1 else [f"output{i}" for i in range(n)]


def _accuracy(cases: list[Case], refs: list) -> float | None:
    real = [(c, r[0]) for c, r in zip(cases, refs) if c.y is not None and r[0].ndim == 2]
    if not real:
        return None
    right = sum(int((r.argmax(axis=1) == c.y).sum()) for c, r in real)
    return right / sum(len(c.y) for c, _ in real)
