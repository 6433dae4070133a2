"""Benchmark, on demand (not a test): the peak memory of a whole `lenetc build` on a .npy dataset
larger than the memory a build may use, against the same build on a tiny dataset.

Writes a float32 .npy dataset of `--gib` GiB (default 2: 32,768 samples of 1 x 128 x 128, written
chunk by chunk, never held whole), and a spec that pools each 128 x 128 sample down 8x before a
small LeNet-like stack (cheap compute: the benchmark is about reading). Runs `lenetc build` on it
in a child process, one epoch, and reads the child's peak resident set (ru_maxrss of the child,
measured by a wrapper process of its own: anonymous
memory and the mapped file's resident pages alike); then the same build on 512 samples, the floor
that torch, onnx and onnxruntime cost on their own. Prints both, the dataset's size, and the ratio
peak / dataset size. The build streams the file (npy is memory-mapped, batches go through a
DataLoader, statistics are one pass, mapped pages are released every 4 MiB read).

    PYTHONPATH=. python benchmarks/bench_memory.py [--gib 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

SPEC = """\
name: wide
input: {{shape: [1, 128, 128]}}
layers:
  - {{type: avg_pool2d, kernel_size: 8}}
  - {{type: conv2d, out_channels: 6, kernel_size: 5}}
  - {{type: relu}}
  - {{type: max_pool2d, kernel_size: 2}}
  - {{type: flatten}}
  - {{type: linear, out_features: 10}}
train:
  dataset: {{name: npy, x: {x}, y: {y}, fit: none, test_split: 0.05}}
  epochs: 1
  batch_size: 64
  validation_split: 0.05
verify: {{providers: [cpu], batch_sizes: [1, 3, 64]}}
"""

SAMPLE = (1, 128, 128)


def write_dataset(folder: Path, n: int, tag: str) -> int:
    """x (n, 1, 128, 128) float32 and y (n,) int64, written in chunks; returns x's bytes."""
    x_path = folder / f"x_{tag}.npy"
    x = np.lib.format.open_memmap(x_path, mode="w+", dtype=np.float32, shape=(n,) + SAMPLE)
    y = np.empty(n, np.int64)
    rng = np.random.default_rng(0)
    for i in range(0, n, 1024):
        m = min(1024, n - i)
        labels = rng.integers(0, 10, m)
        x[i : i + m] = rng.standard_normal((m,) + SAMPLE, dtype=np.float32) + labels[
            :, None, None, None
        ].astype(np.float32)
        y[i : i + m] = labels
    x.flush()
    del x
    np.save(folder / f"y_{tag}.npy", y)
    return os.path.getsize(x_path)


def peak_of_build(folder: Path, tag: str) -> tuple[int, float, str]:
    """(peak RSS in bytes, seconds, last line) of `lenetc build` in a fresh child process."""
    spec = folder / f"{tag}.yaml"
    spec.write_text(SPEC.format(x=f"x_{tag}.npy", y=f"y_{tag}.npy").replace("wide", tag))
    code = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(done.returncode, peak, (done.stdout.strip().splitlines() or [''])[-1])\n"
        "sys.stderr.write(done.stderr)\n"
    )
    cmd = [sys.executable, "-m", "lenetc", "build", str(spec), "-o", str(folder / "out"), "-q"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *cmd], capture_output=True, text=True, env=env
    )
    seconds = time.perf_counter() - t0
    rc, peak, last = (done.stdout.strip().split(" ", 2) + ["", "", ""])[:3]
    if rc != "0":
        raise SystemExit(f"build of {tag} failed ({rc}): {done.stderr.strip()[-2000:]}")
    return int(peak) * 1024, seconds, last  # ru_maxrss is in KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=2.0)
    ap.add_argument("--keep", type=Path, help="write the datasets here and keep them")
    args = ap.parse_args()
    per = 4 * int(np.prod(SAMPLE))
    n = int(args.gib * (1 << 30)) // per
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        done = folder / "written"  # the datasets are whole (an interrupted write leaves none)
        if done.exists() and done.read_text() == str(n):
            size = os.path.getsize(folder / "x_big.npy")
        else:
            size = write_dataset(folder, n, "big")
            write_dataset(folder, 512, "small")
            done.write_text(str(n))
        print(
            f"have {n} samples of {SAMPLE} float32: {size / 2**30:.2f} GiB in "
            f"{time.perf_counter() - t0:.0f} s"
        )
        small, small_s, _ = peak_of_build(folder, "small")
        big, big_s, last = peak_of_build(folder, "big")
    mib = 1 << 20
    print(f"  build on 512 samples:        peak RSS {small / mib:7.0f} MiB ({small_s:.0f} s)")
    print(
        f"  build on {size / 2**30:.2f} GiB streamed: peak RSS {big / mib:7.0f} MiB "
        f"({big_s:.0f} s; {last})"
    )
    print(
        f"peak / dataset size: {big / size:.2f}; above the small build's floor: "
        f"{(big - small) / mib:.0f} MiB"
    )


if __name__ == "__main__":
    main()
