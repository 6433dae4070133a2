"""How long `lenetc verify` of the LeNet build takes in every runtime, once the C++ program of the
libtorch[c++] row is cached; against verifying the in-process core runtimes only, in the same run.

The issue's target: at most 15 s for all runtimes on 2 cores. Run on demand:
    python benchmarks/bench_verify.py [BUILD_DIR] [--runs N]
Without BUILD_DIR it builds specs/lenet5.yaml (2 epochs) into a temporary folder first. Prints the
median wall time of each whole `lenetc verify` process, the ratio to the core-only baseline, and
the per-runtime seconds of the last all-runtimes run (from verify.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ["torch", "torchscript", "torch.export", "onnxruntime", "onnx.reference"]
TARGET_S = 15.0


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", nargs="?")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    lenetc = [sys.executable, "-m", "lenetc"]
    with tempfile.TemporaryDirectory() as tmp:
        build = args.build
        if build is None:
            spec = str(ROOT / "specs" / "lenet5.yaml")
            subprocess.run(
                [
                    *lenetc,
                    "build",
                    spec,
                    "-o",
                    tmp,
                    "--epochs",
                    "2",
                    "-q",
                    "--runtime",
                    "onnxruntime[cpu]",
                ],
                check=True,
                capture_output=True,
            )
            build = str(Path(tmp) / "lenet5")
        print(f"warming up (compiles the libtorch[c++] program unless cached): {build}")
        subprocess.run([*lenetc, "verify", build, "--runtime", "libtorch"], capture_output=True)
        commands = {
            "verify, core runtimes (baseline)": [*lenetc, "verify", build]
            + [a for name in CORE for a in ("--runtime", name)],
            "verify, every runtime": [*lenetc, "verify", build],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):  # interleaved, so drift in machine load hits both alike
            for name, cmd in commands.items():
                times[name].append(timed(cmd))
        report = json.loads((Path(build) / "verify.json").read_text())
    base = statistics.median(times["verify, core runtimes (baseline)"])
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<34} median {median:6.2f} s   x{median / base:5.2f} of baseline")
    print("per runtime, last all-runtimes run (verify.json):")
    for row in report["runtimes"]:
        print(f"  {row['runtime']:<28} {row['seconds']:6.2f} s  {row['status']}")
    every = statistics.median(times["verify, every runtime"])
    verdict = "within" if every <= TARGET_S else "OVER"
    print(f"every runtime: {every:.2f} s, {verdict} the {TARGET_S:.0f} s target")


if __name__ == "__main__":
    main()
