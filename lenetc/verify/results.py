"""Stage 6b, verify (results): the parity report's types, shared by comparison and formatting.

parity.py fills them in, table.py prints them and writes verify.json; neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .divergence import Divergence

PASS, FAIL, UNAVAILABLE = "PASS", "FAIL", "unavailable"
# Outside tolerance because the runtime chose a lower precision by itself (OpenVINO's bf16 default
# on CPUs with AMX): shown with its numbers and why; a failure only where it is required.
WARN = "WARN"


@dataclass
class Case:
    """One input batch: seeded random values, or real held-out samples with their labels."""

    kind: str  # "random" | "heldout"
    x: np.ndarray
    y: np.ndarray | None = None

    @property
    def label(self) -> str:
        return f"{self.kind} batch {len(self.x)}"


@dataclass
class OutputResult:
    output: str
    max_abs: float = 0.0
    max_rel: float = 0.0  # over elements with |ref| >= atol: below that, atol governs
    min_atol: float = 0.0  # the smallest atol that passes at the given rtol
    min_rtol: float = 0.0  # the smallest rtol that passes at the given atol
    worst: str = ""  # the case and element of max_abs
    out_of_tolerance: int = 0
    elements: int = 0
    argmax_agreement: float | None = None  # on the held-out samples
    accuracy: float | None = None
    samples: int = 0  # held-out samples behind the two above
    passed: bool = True
    problem: str | None = None  # a shape mismatch or a missing output


@dataclass
class RuntimeResult:
    runtime: str
    artifact: str
    device: str
    status: str = PASS
    reason: str | None = None
    outputs: list[OutputResult] = field(default_factory=list)
    divergence: Divergence | None = None
    notes: list[str] = field(default_factory=list)  # e.g. weights differing within tolerance
    seconds: float = 0.0


@dataclass
class Report:
    build: str
    spec_file: str
    atol: float
    rtol: float
    batch_sizes: list[int]
    inputs: list[str]
    reference: str
    reference_accuracy: float | None
    required: list[str]
    runtimes: list[RuntimeResult] = field(default_factory=list)
    seconds: float = 0.0
    int8: Any = None  # int8.Int8Report, when the folder holds model.int8.onnx

    @property
    def passed(self) -> bool:
        int8_ok = self.int8 is None or self.int8.passed
        return int8_ok and all(r.status != FAIL for r in self.runtimes)

    def failures(self) -> list[str]:
        """One line per failing runtime: which runtime, which output, by how much, and where."""
        lines = []
        for r in self.runtimes:
            if r.status != FAIL:
                continue
            bad = [o for o in r.outputs if not o.passed]
            if not bad:
                lines.append(f"{r.runtime} ({r.artifact}): {r.reason}")
                continue
            for o in bad:
                text = f"{r.runtime} ({r.artifact}): output {o.output} "
                text += o.problem or (
                    f"max |ref - out| = {o.max_abs:.2e} at {o.worst} (atol {self.atol:.0e}, "
                    f"rtol {self.rtol:.0e}; the smallest atol that passes is {o.min_atol:.1e}); "
                    f"{o.out_of_tolerance}/{o.elements} elements out of tolerance"
                )
                if r.divergence is not None:
                    text += "; " + r.divergence.describe(self.spec_file)
                lines.append(text)
        if self.int8 is not None:
            lines += self.int8.failures()
        return lines
