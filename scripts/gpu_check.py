#!/usr/bin/env python3
"""The prepared GPU check: build LeNet-5 (trained on CUDA) and verify it with torch on CUDA and
ONNX Runtime's CUDA execution provider required, printing the parity table; then measure training:
LeNet-5 on CUDA against the CPU (samples/s and the ratio), and DDP over NCCL on the GPUs there are
(`lenetc build --nproc-per-node N --device cuda`, one rank per GPU). Well under five minutes on
one GPU.

Run from the repository root:  python scripts/gpu_check.py [--wheels DIR] [--out DIR]

It first says what it finds (python, torch and its CUDA, the device, onnxruntime and its
providers). Without a CUDA device it says so and exits 0: there is nothing to check. With a
device but an onnxruntime that lacks CUDAExecutionProvider it says so; given --wheels DIR (a folder
holding an onnxruntime-gpu wheel) it swaps onnxruntime for onnxruntime-gpu from that folder in the
current environment, offline, and goes on. Exit status: 0 parity PASS and training checks passed
(or no CUDA here), 1 the build or a training check failed, 3 a parity failure (which includes a
required CUDA runtime that cannot run).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
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


def train_throughput(samples: int, batch: int) -> dict[str, float]:
    """samples/s of one LeNet-5 epoch on each device, same data and initial weights."""
    import torch

    from lenetc.artifacts import module_class_from_source
    from lenetc.check.shapes import check
    from lenetc.spec.config import DatasetConfig
    from lenetc.spec.load import load_spec
    from lenetc.targets.torch import render
    from lenetc.train.datasets import load_dataset
    from lenetc.train.loop import TrainIO, fit

    spec = load_spec(ROOT / "specs" / "lenet5.yaml")
    cls = module_class_from_source(render(check(spec)), spec.class_name, Path("model.py"))
    source = DatasetConfig(name="synthetic", samples=samples)
    data = load_dataset(source, spec.input_shape, 10, seed=0, validation_split=0.0)
    cfg = dataclasses.replace(spec.train, epochs=1, batch_size=batch, validation_split=0.0)
    torch.manual_seed(0)
    start = cls().state_dict()
    rates = {}
    for device in ("cuda", "cpu", "cuda"):  # CUDA twice: the first pays for warm-up
        model = cls()
        model.load_state_dict(start)
        result = fit(model, data, cfg, TrainIO(log=lambda line: None, device=device))
        rates[device] = len(data.y_train) / result.seconds
    return rates


def ddp_on_gpus(out: Path, epochs: int) -> bool:
    """`lenetc build --nproc-per-node <GPUs> --device cuda`: NCCL, one rank per GPU."""
    import torch

    gpus = torch.cuda.device_count()
    spec = ROOT / "specs" / "lenet5.yaml"
    cmd = [sys.executable, "-m", "lenetc", "build", str(spec), "-o", str(out / "ddp"), "-q"]
    cmd += ["--device", "cuda", "--epochs", str(epochs), "--nproc-per-node", str(gpus)]
    if 16 % gpus:  # the spec's global batch of 16 must divide by the world size
        cmd += ["--batch-size", str(gpus * max(1, round(16 / gpus)))]
    say(f"DDP: {' '.join(cmd[1:])}")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        say(f"FAIL DDP on {gpus} GPU(s) exited {done.returncode}: {done.stderr.strip()[-1500:]}")
        return False
    summary = json.loads((out / "ddp" / "lenet5" / "train.json").read_text())
    dist = summary.get("distributed", {})
    digests = set(dist.get("rank_weights_sha256", []))
    ok = dist.get("backend") == "nccl" and dist.get("world_size") == gpus and len(digests) == 1
    say(
        f"{'PASS' if ok else 'FAIL'} DDP over {dist.get('backend')} on {gpus} GPU(s): "
        f"{dist.get('world_size')} ranks, {len(digests)} distinct final weights, trained on "
        f"{summary['device']['trained_on']}, test accuracy {summary['test_accuracy']:.2%}, "
        f"{seconds:.0f} s for the whole build"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, help="folder with an onnxruntime-gpu wheel")
    parser.add_argument("--out", type=Path, help="build parent folder (default: a temp folder)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--samples", type=int, default=20_000, help="for the throughput check")
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
    trained_on = json.loads((result.folder / "train.json").read_text())["device"]
    training_ok = trained_on["trained_on"].startswith("cuda")
    say(
        f"{'PASS' if training_ok else 'FAIL'} training with train.device auto ran on "
        f"{trained_on['trained_on']} ({trained_on['why']})"
    )

    from lenetc.verify.parity import verify_build
    from lenetc.verify.table import format_table

    report = verify_build(result.folder, require=("cuda",))
    print(format_table(report), flush=True)
    for line in report.failures():
        say(f"FAIL {line}")
    for batch in (64, 512):
        try:
            rates = train_throughput(args.samples, batch)
        except Exception as exc:  # a measurement, reported; the build above already passed
            say(f"FAIL training throughput at batch {batch}: {type(exc).__name__}: {exc}")
            training_ok = False
            continue
        say(
            f"training LeNet-5, batch {batch}, {args.samples} samples: cuda {rates['cuda']:.0f} "
            f"samples/s, cpu {rates['cpu']:.0f} samples/s ({torch_threads()} threads): "
            f"cuda / cpu = {rates['cuda'] / rates['cpu']:.1f}x"
        )
    training_ok = ddp_on_gpus(out, args.epochs) and training_ok
    say(
        f"parity {'PASS' if report.passed else 'FAIL'} with CUDA required; training on CUDA "
        f"{'PASS' if training_ok else 'FAIL'}; {time.perf_counter() - started:.0f} s in all; "
        f"report in {result.folder / 'verify.json'}"
    )
    if not report.passed:
        return 3
    return 0 if training_ok else 1


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


if __name__ == "__main__":
    sys.exit(main())
