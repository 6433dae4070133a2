"""Benchmark, on demand (not a test): training throughput of the generated LeNet-5 against a
hand-written copy of the same network, in the same loop (lenetc.train.loop.fit) on the same data.

Takes a spec (default specs/lenet5.yaml); renders and imports its module, writes the hand-written
LeNet-5 below, and trains each for one epoch on the same synthetic data from the same initial
weights, alternating which goes first, `--repeats` times. Prints samples/s for each and the ratio
generated / hand-written (the median of paired rounds); the target is at least 0.98.

    PYTHONPATH=. python benchmarks/bench_train.py [--repeats 15] [--samples 2048] [--threads N]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lenetc.artifacts import load_module_class  # noqa: E402
from lenetc.check.shapes import check  # noqa: E402
from lenetc.spec.config import DatasetConfig  # noqa: E402
from lenetc.spec.load import load_spec  # noqa: E402
from lenetc.targets.torch import render  # noqa: E402
from lenetc.train.datasets import load_dataset  # noqa: E402
from lenetc.train.loop import TrainIO, fit  # noqa: E402


class HandLeNet5(nn.Module):
    """LeNet-5 as a person writes it (style.md), with the generated module's attribute names."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, kernel_size=5)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", nargs="?", default=str(ROOT / "specs" / "lenet5.yaml"))
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--samples", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    spec = load_spec(args.spec)
    with tempfile.TemporaryDirectory() as tmp:
        model_py = Path(tmp) / "model.py"
        model_py.write_text(render(check(spec)))
        generated_cls = load_module_class(model_py, spec.class_name)
    cfg = dataclasses.replace(
        spec.train,
        dataset=DatasetConfig(name="synthetic", samples=args.samples),
        epochs=1,
        validation_split=0.0,
        patience=None,
    )
    data = load_dataset(cfg.dataset, spec.input_shape, 10, seed=0, validation_split=0.0)
    torch.manual_seed(0)
    start = HandLeNet5().state_dict()
    models = {"generated": generated_cls(), "hand-written": HandLeNet5()}
    for m in models.values():
        m.load_state_dict(start)  # same initial weights: the same arithmetic, step for step
    quiet = TrainIO(log=lambda line: None)

    def one_epoch(name: str) -> float:
        models[name].load_state_dict(start)
        t0 = time.perf_counter()
        fit(models[name], data, cfg, quiet)
        return time.perf_counter() - t0

    for name in models:  # warm-up: allocator, oneDNN kernels
        one_epoch(name)
    times: dict[str, list[float]] = {name: [] for name in models}
    for r in range(args.repeats):
        order = list(models) if r % 2 == 0 else list(reversed(models))  # interleaved, alternating
        for name in order:
            times[name].append(one_epoch(name))

    n = len(data.x_train)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(
        f"{spec.name}: {n} samples x {args.repeats} interleaved epochs, "
        f"batch {cfg.batch_size}, {torch.get_num_threads()} threads"
    )
    for name, t in med.items():
        spread = (max(times[name]) - min(times[name])) / t
        print(
            f"  {name:<13} {n / t:>9.0f} samples/s  (median epoch {t * 1e3:.1f} ms, "
            f"spread {spread:.0%})"
        )
    # each round's pair ran back to back, so its ratio cancels slow drifts in machine load
    pairs = [h / g for h, g in zip(times["hand-written"], times["generated"])]
    ratio = statistics.median(pairs)
    print(
        f"throughput ratio generated / hand-written: {ratio:.3f} (median of {len(pairs)} "
        f"paired rounds; ratio of medians {med['hand-written'] / med['generated']:.3f}); "
        "target >= 0.98"
    )


if __name__ == "__main__":
    main()
