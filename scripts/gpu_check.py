#!/usr/bin/env python3
"""The prepared GPU check: build LeNet-5 and verify it with torch on CUDA and ONNX Runtime's CUDA
execution provider required, printing the parity table (well under five minutes on one GPU).

Run from the repository root:  python scripts/gpu_check.py [--wheels DIR] [--out DIR]

It first says what it finds (python, torch and its CUDA, the device, onnxruntime and its
providers). Without a CUDA device it says so and exits 0: there is nothing to check. With a
device but an onnxruntime that lacks CUDAExecutionProvider it says so; given --wheels DIR (a folder
holding an onnxruntime-gpu wheel) it swaps onnxruntime for onnxruntime-gpu from that folder in the
current environment, offline, and goes on. Exit status: 0 parity PASS (or no CUDA here), 1 the
build failed, 3 a parity failure (which includes a required CUDA runtime that cannot run).
"""

from __future__ import annotations

import argparse
import importlib
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def say(text: str) -> None:
    print(f"[gpu_check] {text}", flush=True)


def describe_machine() -> str | None:
    """Print what is here; return why CUDA cannot be used, or None when a device is present."""
    import onnxruntime as ort
    import torch

    from lenetc.runtimes.cuda import cuda_device_problem

    say(f"python {platform.python_version()} on {platform.machine()}")
    say(
        f"torch {torch.__version__}, built with CUDA {torch.version.cuda or 'no'}; "
        f"torch.cuda.is_available() = {torch.cuda.is_available()}"
    )
    if torch.cuda.is_available():
        say(f"device 0: {torch.cuda.get_device_name(0)}")
    if shutil.which("nvidia-smi"):
        smi = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
        for line in (smi.stdout or smi.stderr).strip().splitlines():
            say(f"nvidia-smi: {line}")
    else:
        say("nvidia-smi: not on PATH")
    say(f"onnxruntime {ort.__version__}, providers: {', '.join(ort.get_available_providers())}")
    return cuda_device_problem()


def ensure_ort_cuda(wheels: Path | None) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        return
    if wheels is None:
        say(
            f"onnxruntime {ort.__version__} has no CUDAExecutionProvider: onnxruntime[cuda] will "
            "fail as required-but-unavailable. Rerun with --wheels DIR (a folder with an "
            "onnxruntime-gpu wheel) or pip install onnxruntime-gpu."
        )
        return
    say(f"swapping onnxruntime for onnxruntime-gpu from {wheels} (offline)")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(pip + ["uninstall", "-y", "-q", "onnxruntime"], check=False)
    done = subprocess.run(
        pip + ["install", "-q", "--no-index", "--find-links", str(wheels), "onnxruntime-gpu"]
    )
    if done.returncode != 0:
        say("pip could not install onnxruntime-gpu from that folder; going on without it")
    for name in [m for m in sys.modules if m == "onnxruntime" or m.startswith("onnxruntime.")]:
        del sys.modules[name]
    ort = importlib.import_module("onnxruntime")
    say(f"now onnxruntime {ort.__version__}, providers: {', '.join(ort.get_available_providers())}")


def preload_cuda_libraries() -> None:
    """onnxruntime-gpu finds the CUDA and cuDNN that torch's wheels brought, when asked to."""
    import onnxruntime as ort
    import torch

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return
    if torch.cuda.is_available():
        torch.zeros(1, device="cuda")  # loads torch's CUDA runtime first
    if hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()
        except Exception as exc:  # a hint, not a requirement: the session will say if it fails
            say(f"onnxruntime.preload_dlls() failed ({exc}); relying on the library path")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, help="folder with an onnxruntime-gpu wheel")
    parser.add_argument("--out", type=Path, help="build parent folder (default: a temp folder)")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()

    problem = describe_machine()
    if problem is not None:
        say(f"CUDA unavailable: {problem}. Nothing to check on this machine; exiting 0.")
        return 0
    ensure_ort_cuda(args.wheels)
    preload_cuda_libraries()

    out = args.out or Path(tempfile.mkdtemp(prefix="lenetc-gpu-check-"))
    spec = ROOT / "specs" / "lenet5.yaml"
    say(f"building {spec.name} ({args.epochs} epochs) into {out}")
    from lenetc.build import BuildOptions, build
    from lenetc.errors import LenetcError

    try:
        result = build(spec, BuildOptions(out=out, epochs=args.epochs, quiet=True))
    except LenetcError as exc:
        say(f"build failed: {exc}")
        return exc.exit_code
    say(f"built {result.folder} (test accuracy {result.test_accuracy:.2%})")

    from lenetc.verify.parity import verify_build
    from lenetc.verify.table import format_table

    report = verify_build(result.folder, require=("cuda",))
    print(format_table(report), flush=True)
    for line in report.failures():
        say(f"FAIL {line}")
    say(
        f"parity {'PASS' if report.passed else 'FAIL'} with CUDA required; "
        f"{time.perf_counter() - started:.0f} s in all; report in {result.folder / 'verify.json'}"
    )
    return 0 if report.passed else 3


if __name__ == "__main__":
    sys.exit(main())
