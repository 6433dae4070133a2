"""Benchmark, on demand (not a test): training throughput of a dataset streamed from memory-mapped
.npy files against the same samples held in memory (an .npz archive), in the same loop.

An MNIST-sized synthetic set (60,000 x 1 x 28 x 28 uint8 pixels, plus 1,000 test samples) is
written once as x.npy/y.npy and as set.npz; LeNet-5 (specs/lenet5.yaml, padded to 32 x 32) trains
one epoch on each, interleaved, `--repeats` times, from the same initial weights. The in-memory
path converts, pads and normalizes every sample once, before training; the streamed path reads each
batch from the file and does that work per batch. Prints samples/s for each, the time of the
statistics pass, and the ratio streamed / in-memory (median of paired rounds); target >= 0.9.
Both paths give the same weights (tests/test_streaming.py); this measures only their speed.

    PYTHONPATH=. python benchmarks/bench_streaming.py [--repeats 3] [--batch-size 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lenetc.artifacts import module_class_from_source  # noqa: E402
from lenetc.check.shapes import check  # noqa: E402
from lenetc.spec.config import DatasetConfig  # noqa: E402
from lenetc.spec.load import load_spec  # noqa: E402
from lenetc.targets.torch import render  # noqa: E402
from lenetc.train.datasets import load_dataset  # noqa: E402
from lenetc.train.loop import TrainIO, fit  # noqa: E402


def write_sets(folder: Path, n: int, n_test: int) -> None:
    """MNIST-like uint8 digits: a class-dependent blob plus noise, as .npy files and as .npz."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, size=n + n_test)
    yy, xx = np.mgrid[0:28, 0:28]
    x = np.empty((n + n_test, 1, 28, 28), np.uint8)
    for c in range(10):  # one bright disc per class, at its own place
        cy, cx = 6 + 4 * (c // 4), 6 + 5 * (c % 4)
        disc = (((yy - cy) ** 2 + (xx - cx) ** 2) < 30) * 180.0
        idx = np.flatnonzero(y == c)
        noise = rng.normal(0, 40, (len(idx), 1, 28, 28))
        x[idx] = np.clip(disc + noise, 0, 255).astype(np.uint8)
    np.save(folder / "x.npy", x[:n])
    np.save(folder / "y.npy", y[:n])
    np.save(folder / "x_test.npy", x[n:])
    np.save(folder / "y_test.npy", y[n:])
    np.savez(folder / "set.npz", x=x[:n], y=y[:n], x_test=x[n:], y_test=y[n:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=60_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = load_spec(ROOT / "specs" / "lenet5.yaml")
    cls = module_class_from_source(render(check(spec)), spec.class_name, Path("model.py"))

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_sets(folder, args.samples, 1000)
        sources = {
            "in-memory": DatasetConfig(name="npz", path="set.npz", fit="pad"),
            "streamed": DatasetConfig(
                name="npy",
                fit="pad",
                x="x.npy",
                y="y.npy",
                x_test="x_test.npy",
                y_test="y_test.npy",
            ),
        }
        data, load_s = {}, {}
        for name, source in sources.items():
            t0 = time.perf_counter()
            data[name] = load_dataset(
                source, spec.input_shape, 10, seed=0, validation_split=0.0, base_dir=folder
            )
            load_s[name] = time.perf_counter() - t0
        cfg = dataclasses.replace(
            spec.train,
            epochs=1,
            batch_size=args.batch_size,
            validation_split=0.0,
            patience=None,
            workers=args.workers,
        )
        torch.manual_seed(0)
        start = cls().state_dict()
        quiet = TrainIO(log=lambda line: None)

        def one_epoch(name: str) -> float:
            model = cls()
            model.load_state_dict(start)
            return fit(model, data[name], cfg, quiet).seconds

        for name in sources:  # warm-up: allocator, oneDNN kernels, the page cache
            one_epoch(name)
        times: dict[str, list[float]] = {name: [] for name in sources}
        for r in range(args.repeats):
            order = list(sources) if r % 2 == 0 else list(reversed(sources))
            for name in order:
                times[name].append(one_epoch(name))

    n = len(data["in-memory"].y_train)
    print(
        f"lenet5: {n} x 1 x 28 x 28 uint8 samples (padded to 32 x 32), {args.repeats} interleaved "
        f"epochs, batch {args.batch_size}, {args.workers} workers, "
        f"{torch.get_num_threads()} threads"
    )
    for name, t in times.items():
        med = statistics.median(t)
        print(
            f"  {name:<10} {n / med:>8.0f} samples/s  (median epoch {med:.2f} s; loading and "
            f"statistics {load_s[name]:.2f} s)"
        )
    pairs = [m / s for m, s in zip(times["in-memory"], times["streamed"])]
    print(
        f"throughput ratio streamed / in-memory: {statistics.median(pairs):.3f} (median of "
        f"{len(pairs)} paired rounds); target >= 0.9"
    )


if __name__ == "__main__":
    main()
