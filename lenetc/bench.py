"""After verify: `lenetc bench BUILD_DIR`, the speed of every runtime that can run here.

Takes a build folder that passes verify's integrity checks (else exit 4); runs every CPU runtime
of runtimes.plan (so a runtime added there is timed here too) on seeded random inputs: latency
at batch 1 and throughput at larger batches, each after a warm-up, as the median of repeated
timings, on a stated number of threads (torch's, ONNX Runtime's; the C target is
single-threaded). Each figure is also a ratio to torch eager measured in
the same run. Returns a BenchReport; `format_table` prints it and `to_json` is bench.json (written
atomically into the build folder). A runtime that cannot run here is listed with the reason.
A runtime that emulates a device (the Cortex-M rows under QEMU) is not timed: its emulated
instructions per inference are counted instead, and labelled so.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .artifacts import BuildDir
from .runtimes import plan
from .runtimes.base import Runtime, RuntimeProblem
from .spec.load import load_spec
from .verify.agreement import check_build
from .verify.table import unavailable_summary

BASELINE = "torch[cpu]"
BATCHES = (1, 16, 256)
MEASURE_SECONDS = 0.2  # each of the repeats times calls for about this long
REPEATS = 7
COUNTED = 8  # samples an emulated device runs for its instruction count


@dataclass
class Timing:
    batch: int
    seconds: float  # median per call
    repeats: int
    calls: int  # per repeat

    @property
    def per_second(self) -> float:
        return self.batch / self.seconds


@dataclass
class RuntimeBench:
    runtime: str
    artifact: str
    status: str = "ok"  # ok | unavailable | failed | not timed
    reason: str = ""
    built_with: str = ""
    timings: list[Timing] = field(default_factory=list)
    ratios: dict[int, float] = field(default_factory=dict)  # time per call / torch eager's
    instructions: float | None = None  # an emulated device: instructions per inference
    samples: int = 0  # behind `instructions`


@dataclass
class BenchReport:
    build: str
    threads: int
    batches: list[int]
    machine: str
    python: str
    baseline: str = BASELINE
    runtimes: list[RuntimeBench] = field(default_factory=list)
    seconds: float = 0.0


INT8_ROWS = ("onnxruntime[cpu]", "c[cpu,int8]")


def bench_build(
    root: Path,
    threads: int = 1,
    batches: tuple[int, ...] = BATCHES,
    repeats: int = REPEATS,
    measure: float = MEASURE_SECONDS,
    progress: bool = False,
    runtimes: tuple[str, ...] = (),
) -> BenchReport:
    started = time.perf_counter()
    out = BuildDir(Path(root)).require_model()
    check_build(out.root)  # a tampered folder's speed is no answer (exit 4, as verify)
    spec = load_spec(out.spec)
    import torch

    torch.set_num_threads(threads)
    chosen = plan(out, spec, ("cpu",), runtimes, where="bench --runtime")
    rows = [r for r in chosen if r.device == "cpu"]
    if out.int8_onnx.is_file():  # int8 rows: ONNX Runtime on model.int8.onnx, the C variant
        from .verify.int8 import int8_rows

        rows += [r for r in int8_rows(out, spec, runtimes) if r.name in INT8_ROWS]
    report = BenchReport(
        str(out.root), threads, list(batches), _machine(), platform.python_version()
    )
    rng = np.random.default_rng(spec.train.seed)
    inputs = {b: rng.standard_normal((b,) + spec.input_shape, np.float32) for b in batches}
    from tqdm import tqdm

    with tqdm(
        total=len(rows) * len(batches), desc="bench", unit="run", disable=not progress
    ) as bar:
        for runtime in rows:
            bar.set_postfix_str(runtime.name)
            report.runtimes.append(_bench_one(runtime, inputs, threads, repeats, measure, bar))
    base = next((r for r in report.runtimes if r.runtime == BASELINE and r.status == "ok"), None)
    if base is not None:
        reference = {t.batch: t.seconds for t in base.timings}
        for r in report.runtimes:
            r.ratios = {t.batch: t.seconds / reference[t.batch] for t in r.timings}
    report.seconds = round(time.perf_counter() - started, 1)
    return report


def _bench_one(
    runtime: Runtime, inputs: dict, threads: int, repeats: int, measure: float, bar
) -> RuntimeBench:
    result = RuntimeBench(runtime.name, runtime.artifact)
    why = runtime.unavailable()  # first: a runtime not installed is unavailable, not "not timed"
    if why is not None:
        result.status, result.reason = "unavailable", why
        bar.update(len(inputs))
        return result
    if runtime.emulates:
        return _count_one(runtime, result, inputs, bar)
    if runtime.runs_cases_at_once:  # Node.js, Chromium, the libtorch program: one process a call
        result.status = "not timed"
        result.reason = (
            "runs in another program started per call, so its time would be that program's "
            "start-up; time it inside the program that embeds it (examples/)"
        )
        bar.update(len(inputs))
        return result
    runtime.threads, runtime.fast = threads, True
    try:
        runtime.load()
    except RuntimeProblem as exc:
        result.status, result.reason = "failed", str(exc)
        bar.update(len(inputs))
        return result
    result.built_with = getattr(runtime, "compiled_with", "")
    for batch, x in inputs.items():
        try:
            result.timings.append(time_calls(lambda x=x: runtime.run(x), batch, repeats, measure))
        except Exception as exc:  # one line: the runtime failed on this batch
            result.status, result.reason = "failed", f"batch {batch}: {type(exc).__name__}: {exc}"
            bar.update(1)
            break
        bar.update(1)
    return result


def _count_one(runtime: Runtime, result: RuntimeBench, inputs: dict, bar) -> RuntimeBench:
    """An emulated device: its instructions per inference over up to COUNTED samples of the
    largest batch; a count of emulated instructions, not a time."""
    bar.update(len(inputs))
    why = runtime.unavailable()
    if why is not None:
        result.status, result.reason = "unavailable", why
        return result
    x = inputs[max(inputs)][:COUNTED]
    try:
        runtime.load()
        runtime.run_many([x])
    except RuntimeProblem as exc:
        result.status, result.reason = "failed", str(exc)
        return result
    result.status, result.samples = "emulated", len(x)
    result.instructions = runtime.instructions()
    result.reason = (
        f"emulated instructions per inference on {runtime.emulates}, counted by QEMU "
        "(-icount, SysTick): not cycles, not wall time"
    )
    return result


def time_calls(call: Callable[[], object], batch: int, repeats: int, measure: float) -> Timing:
    """Warm up, choose how many calls fill `measure` seconds, then the median of `repeats`."""
    start = time.perf_counter()
    call()  # the first call may compile or allocate: not timed
    warm = 1
    while time.perf_counter() - start < measure / 4 and warm < 1000:
        call()
        warm += 1
    once = max((time.perf_counter() - start) / warm, 1e-9)
    calls = max(1, int(measure / once))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            call()
        samples.append((time.perf_counter() - t0) / calls)
    return Timing(batch, statistics.median(samples), repeats, calls)


def _machine() -> str:
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} logical CPUs"


# ---- format -------------------------------------------------------------------------------------


def to_json(report: BenchReport) -> dict:
    data = asdict(report)
    for r, raw in zip(report.runtimes, data["runtimes"]):
        raw["timings"] = [{**asdict(t), "samples_per_second": t.per_second} for t in r.timings]
        raw["ratios"] = {str(b): v for b, v in r.ratios.items()}
    return data


def format_table(report: BenchReport) -> str:
    header = ["runtime", "artifact", f"latency (batch {report.batches[0]})"] + [
        f"batch {b}" for b in report.batches[1:]
    ]
    rows, notes, missing = [], [], []
    for r in report.runtimes:
        if r.status == "emulated" and r.instructions is not None:
            shown = f"{r.instructions / 1e6:.2f}M instructions"
            rows.append([r.runtime, r.artifact, shown] + [""] * (len(report.batches) - 1))
            notes.append(f"{r.runtime}: {r.reason}")
            continue
        if r.status != "ok" and not r.timings:
            rows.append([r.runtime, r.artifact, r.status] + [""] * (len(report.batches) - 1))
            if r.status == "unavailable":  # the reasons: bench.json, or verify --explain
                missing.append(r.runtime)
            else:
                notes.append(f"{r.runtime}: {r.status}: {r.reason}")
            continue
        cells = [r.runtime, r.artifact]
        for i, t in enumerate(r.timings):
            ratio = r.ratios.get(t.batch)
            if i == 0:
                shown = _duration(t.seconds) + (f" ({ratio:.2f}x)" if ratio is not None else "")
            else:
                speed = f" ({1 / ratio:.2f}x)" if ratio is not None else ""
                shown = f"{t.per_second:,.0f}/s" + speed
            cells.append(shown)
        cells += [""] * (len(header) - len(cells))
        rows.append(cells)
        if r.built_with:
            notes.append(f"{r.runtime}: built with {r.built_with}")
        if r.status != "ok":
            notes.append(f"{r.runtime}: {r.status}: {r.reason}")
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(len(header))]
    lines = [
        f"bench of {report.build} on {report.machine}, {report.threads} thread(s) each",
        f"median of repeated timings after a warm-up; in brackets: latency as a fraction of "
        f"{report.baseline}'s, throughput as a multiple of {report.baseline}'s (same run)",
        "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines += [f"  {n}" for n in notes]
    if missing:
        lines.append(f"  {unavailable_summary(missing, report.build)}")
    lines.append(f"bench: {report.seconds:.1f} s")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"
