"""Stage 2, check (memory): ShapeTrace + batch sizes -> what a build will hold in memory, and the
budget it must fit in.

`check` allocates nothing and reports any size; `build` trains and verifies, so it is where memory
is used, and it calls `require` before allocating anything. The estimate counts float32 weights,
their gradients and the optimizer's state, every layer's output kept for the backward pass (and
its gradient) at the training batch, and the float64 reference that verify runs at its largest
batch. The budget is a share of this machine's memory (the smaller of physical memory and a
cgroup limit), or what the user sets (`lenetc build --memory-budget 8GB`). No torch import.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import RuntimeFailure
from ..spec.config import TrainConfig, VerifyConfig
from .shapes import ShapeTrace

MACHINE_SHARE = 0.75  # of the machine's memory a build may plan to use by default
_STATE = {"sgd": 1, "adam": 2, "adamw": 2}  # optimizer tensors per parameter (sgd: momentum)
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40})
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*\Z", re.IGNORECASE)


@dataclass(frozen=True)
class Estimate:
    weights: int  # bytes: float32 weights, gradients, optimizer state
    training: int  # bytes: activations and their gradients at the training batch
    reference: int  # bytes: verify's float64 activations at its largest batch
    batch: int

    @property
    def total(self) -> int:
        return self.weights + max(self.training, self.reference)


@dataclass(frozen=True)
class Budget:
    bytes: int
    source: str  # "--memory-budget 8GB", "3/4 of this machine's 16.0 GB"


def estimate(trace: ShapeTrace, train: TrainConfig, verify: VerifyConfig) -> Estimate:
    opt = train.optimizer
    state = 0 if opt.type == "sgd" and not opt.momentum else _STATE.get(opt.type, 2)
    copies = 2 + state  # weights, gradients, optimizer state
    activations = sum(_numel(t.out_shape) for t in trace.nodes) + _numel(trace.spec.input_shape)
    return Estimate(
        weights=4 * trace.params * copies,
        training=4 * 2 * activations * train.batch_size,
        reference=8 * activations * max(verify.batch_sizes),
        batch=train.batch_size,
    )


def machine_memory() -> int | None:
    """Bytes this process may use: physical memory, or a smaller cgroup (container) limit."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        physical = None
    limits = [physical] if physical else []
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            limits.append(int(text))
    return min(limits) if limits else None


def default_budget() -> Budget:
    memory = machine_memory()
    if memory is None:
        return Budget(8 * 10**9, "8 GB (this machine's memory could not be read)")
    return Budget(int(memory * MACHINE_SHARE), f"3/4 of this machine's {gb(memory)}")


def user_budget(n: int) -> Budget:
    return Budget(n, f"set with --memory-budget {gb(n).replace(' ', '')}")


def parse_size(text: str) -> int:
    """'8GB' -> 8e9, '512MiB' -> 512 * 2**20, '1000000' -> bytes. ValueError if unreadable."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"expected a size such as 8GB, 512MB or 16GiB, found '{text}'")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])


def gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 10**9 else f"{n / 1e6:.0f} MB"


def require(trace: ShapeTrace, train: TrainConfig, verify: VerifyConfig, budget: Budget) -> None:
    """RuntimeFailure (exit 1) when the build would need more memory than the budget."""
    need = estimate(trace, train, verify)
    if need.total <= budget.bytes:
        return
    spec = trace.spec
    biggest = max(trace.nodes, key=lambda t: (t.out.params, _numel(t.out_shape)))
    suggested = -(-need.total * 5 // 4 // 10**9)  # a quarter more, in whole GB
    raise RuntimeFailure(
        f"{spec.path}:{biggest.node.line}: the build needs about {gb(need.total)} of memory "
        f"({trace.params:,} parameters with gradients and optimizer state: {gb(need.weights)}; "
        f"activations at batch {need.batch}: {gb(need.training)}; verify's float64 reference: "
        f"{gb(need.reference)}), more than the memory budget of {gb(budget.bytes)} "
        f"({budget.source}); the largest layer is {biggest.node.label}\n"
        f"  hint: raise the budget with `lenetc build --memory-budget {suggested}GB` if the "
        "machine has it, or lower train.batch_size"
    )


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
