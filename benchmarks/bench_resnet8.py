"""Benchmark, on demand (not a test): ResNet-8 against LeNet-5 on the digits, both built in full
(their specs' own epochs and settings) in the same run on the same machine.

Builds specs/lenet5.yaml (the baseline) and specs/resnet8.yaml with `lenetc build`, and prints each
one's test accuracy, training seconds and parity verdict, and ResNet-8's training time as a ratio
to LeNet-5's. ResNet-8 is expected to reach at least LeNet-5's test accuracy (98.33% on the
360 held-out digits), with parity PASS.

    PYTHONPATH=. python benchmarks/bench_resnet8.py [--threads N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lenetc.build import BuildOptions, build  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("lenet5", "resnet8"):
            result = build(ROOT / "specs" / f"{name}.yaml", BuildOptions(out=Path(tmp), quiet=True))
            summary = json.loads((result.folder / "train.json").read_text())
            rows[name] = (result.test_accuracy, summary["train_seconds"], result.passed)
    for name, (acc, seconds, passed) in rows.items():
        verdict = "PASS" if passed else "FAIL"
        print(f"{name:8s} test accuracy {acc:.2%}  training {seconds:6.1f} s  parity {verdict}")
    ratio = rows["resnet8"][1] / rows["lenet5"][1]
    print(f"resnet8 / lenet5 training time: {ratio:.2f}x (threads: {torch.get_num_threads()})")
    ok = rows["resnet8"][0] >= rows["lenet5"][0] and rows["resnet8"][2]
    print("resnet8 reaches lenet5's accuracy with parity PASS" if ok else "resnet8 falls short")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
