"""How long a whole `lenetc check` process takes, against a bare Python start in the same run.

The checker is the inner loop of a person editing a spec, so the project asks for well under 0.3 s
per process. Run on demand:  python benchmarks/bench_check.py [SPEC] [--runs N]
Prints the median wall time of each command and the ratio check / bare interpreter.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default=str(ROOT / "specs" / "lenet5.yaml"))
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    commands = {
        "python -c pass (baseline)": [sys.executable, "-c", "pass"],
        "lenetc check": [sys.executable, "-m", "lenetc", "check", args.spec],
        "lenetc render": [sys.executable, "-m", "lenetc", "render", args.spec],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):  # interleaved, so drift in machine load hits every command alike
        for name, cmd in commands.items():
            times[name].append(timed(cmd))
    base = statistics.median(times["python -c pass (baseline)"])
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<28} median {median * 1000:7.1f} ms   x{median / base:5.2f} of baseline")


if __name__ == "__main__":
    main()
