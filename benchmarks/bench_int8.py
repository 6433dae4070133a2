"""int8 against float, on int8 builds: accuracy drop, file sizes, C weight bytes, C latency.

issue 24's goals: LeNet-5 on digits loses <= 0.5 point; model.int8.onnx <= 0.32x model.onnx;
the C int8 weights <= 0.26x the float C weights (bytes the arrays hold: int8 weights, int32 bias,
multiplier and shift, against float32 weights and biases); int8 C batch-1 latency against the
float C (one thread, -O3 -march=native, interleaved rounds, medians). Reads verify.json's int8
section for the accuracies.

Run on demand:  python benchmarks/bench_int8.py BUILD_DIR [BUILD_DIR ...]
(`lenetc build specs/lenet5.yaml --int8` makes build/lenet5.)
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lenetc.artifacts import BuildDir  # noqa: E402
from lenetc.runtimes.c import CInt8Target, CTarget  # noqa: E402
from lenetc.spec.load import load_spec  # noqa: E402
from lenetc.targets.c import read_weights  # noqa: E402
from lenetc.targets.c.int8 import WEIGHTS, read_int8_weights  # noqa: E402

INT_BYTES = {"_w": 1, "_b": 4, "_m0": 4, "_shift": 1}


def c_weight_bytes(out: BuildDir) -> tuple[int, int | None]:
    float_values = read_weights((out.c_dir / "model_weights.h").read_text())
    f = sum(4 * len(v[3]) for v in float_values.values())
    path = out.c_dir / WEIGHTS
    if not path.is_file():
        return f, None
    q = 0
    for name, values in read_int8_weights(path.read_text()).items():
        q += next(b for s, b in INT_BYTES.items() if name.endswith(s)) * values.size
    return f, q


def latency(out: BuildDir, rounds: int = 15, calls: int = 300) -> tuple[float, float | None]:
    spec = load_spec(out.spec)
    rows = [CTarget(out, spec), CInt8Target(out, spec)]
    x = np.random.default_rng(0).standard_normal((1,) + spec.input_shape, np.float32)
    runs = []
    for row in rows:
        if row.unavailable():
            runs.append(None)
            continue
        row.fast = True
        row.load()
        runs.append(row)
    times: list[list[float]] = [[], []]
    for _ in range(rounds):
        for i, row in enumerate(runs):
            if row is None:
                continue
            start = time.perf_counter()
            for _ in range(calls):
                row.run(x)
            times[i].append((time.perf_counter() - start) / calls)
    med = [statistics.median(t) if t else None for t in times]
    return med[0], med[1]


def main(folders: list[str]) -> None:
    for folder in folders:
        out = BuildDir(Path(folder))
        int8 = json.loads(out.verify_json.read_text()).get("int8")
        if not int8:
            print(f"{folder}: no int8 section in verify.json (build with --int8)")
            continue
        f_onnx, q_onnx = int8["bytes"]["model.onnx"], int8["bytes"]["model.int8.onnx"]
        f_c, q_c = c_weight_bytes(out)
        t_f, t_q = latency(out)
        print(f"{folder}:")
        print(
            f"  accuracy on {int8['test_samples']} test samples: float "
            f"{int8['float_accuracy']:.2%}, int8 {int8['int8_accuracy']:.2%}, drop "
            f"{int8['drop_points']:.2f} points; argmax agreement {int8['argmax_agreement']:.2%}"
        )
        print(f"  model.int8.onnx / model.onnx: {q_onnx:,} / {f_onnx:,} = {q_onnx / f_onnx:.3f}x")
        if q_c is not None:
            print(f"  C weights int8 / float: {q_c:,} / {f_c:,} bytes = {q_c / f_c:.3f}x")
        if t_q is not None:
            print(
                f"  C batch 1: float {t_f * 1e6:.1f} us, int8 {t_q * 1e6:.1f} us = {t_q / t_f:.2f}x"
            )


if __name__ == "__main__":
    main(sys.argv[1:] or ["build/lenet5"])
