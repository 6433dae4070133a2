"""The C target's batch-1 latency against ONNX Runtime's, one thread each, in one run.

issue 11 asks for ratio C / ORT <= 1.0 (aim 0.5) for LeNet-5, the C compiled with -O3 -march=native
and without -ffast-math. Both are called from Python the way `lenetc bench` calls them (the
runtime adapters; ctypes for the C, a one-thread InferenceSession for ORT), in interleaved rounds
so that drift in the machine's load hits both alike; the figure is the median per call. Also
prints the bare C call (no numpy wrapping) and, per compiler found, the C built by gcc and clang.

Run on demand:  python benchmarks/bench_c.py [BUILD_DIR] [--rounds N]
(BUILD_DIR defaults to build/lenet5: `lenetc build specs/lenet5.yaml` makes it.)
"""

from __future__ import annotations

import argparse
import ctypes
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lenetc.artifacts import BuildDir  # noqa: E402
from lenetc.runtimes.c import FAST_FLAGS, CTarget, compile_library  # noqa: E402
from lenetc.runtimes.onnxruntime import OnnxRuntime  # noqa: E402
from lenetc.spec.load import load_spec  # noqa: E402
from lenetc.targets.c import prefix  # noqa: E402


def per_call(call, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", nargs="?", default=str(ROOT / "build" / "lenet5"))
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    out = BuildDir(Path(args.build))
    if not out.onnx.is_file():
        sys.exit(f"{out.root} is not a build folder: run lenetc build specs/lenet5.yaml first")
    spec = load_spec(out.spec)
    x = np.random.default_rng(0).standard_normal((1,) + spec.input_shape).astype(np.float32)
    y = np.empty((1, 10), np.float32)

    ort = OnnxRuntime(out, spec, "cpu")
    ort.threads = 1
    ort.load()
    c = CTarget(out, spec)
    c.fast = True
    c.load()
    calls = {
        "onnxruntime[cpu], 1 thread": lambda: ort.run(x),
        f"c[cpu] ({c.compiled_with})": lambda: c.run(x),
    }
    for cc in ("gcc", "clang"):
        if shutil.which(cc):
            lib = ctypes.CDLL(str(compile_library(out.c_dir, FAST_FLAGS, shutil.which(cc))))
            fn = getattr(lib, f"{prefix(_trace(spec))}_forward")
            fn.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int)
            calls[f"bare C call, {cc}"] = lambda fn=fn: fn(x.ctypes.data, y.ctypes.data, 1)
    for call in calls.values():  # warm-up
        per_call(call, args.calls)
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(args.rounds):
        for name, call in calls.items():
            times[name].append(per_call(call, args.calls))
    median = {name: statistics.median(t) for name, t in times.items()}
    base = median["onnxruntime[cpu], 1 thread"]
    flops = _trace(spec).flops
    print(f"{spec.name}, batch 1, median of {args.rounds} rounds of {args.calls} calls")
    for name, t in median.items():
        print(
            f"  {name:<55} {t * 1e6:8.1f} us  ratio to ORT {t / base:5.2f}  "
            f"({flops / t / 1e9:5.1f} GFLOP/s)"
        )


def _trace(spec):
    from lenetc.check.shapes import check

    return check(spec)


if __name__ == "__main__":
    main()
