"""Runtimes (registry): every way of running a build folder, by name, in table order.

One module per runtime registers one RuntimeKind: its name (what `--runtime`, `--require` and
`verify.runtimes:` select), its place in the parity table and a function from a Target (the build
folder, the spec, the execution providers asked for) to its rows, one Runtime each. Registering a
name twice is an error. `select` picks rows by registered name (`openvino`: both of its rows), by
row name (`onnxruntime[cpu]`) or by device (`cuda`); an unknown name is a usage error naming the
nearest known one.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from ..artifacts import BuildDir
from ..errors import UsageError
from ..spec.load import Spec
from .base import Runtime

DEVICES = ("cpu", "cuda")  # a selector naming a device also asks for its execution provider


@dataclass(frozen=True)
class Target:
    out: BuildDir
    spec: Spec
    providers: tuple[str, ...]  # ONNX Runtime / torch devices, cpu first

    @property
    def devices(self) -> list[str]:
        return ["cpu"] + [p for p in self.providers if p != "cpu"]


@dataclass(frozen=True)
class RuntimeKind:
    name: str
    order: int  # rows sort by it: the torch family 10-30, ONNX Runtime 40, embedders 60 and up
    rows: Callable[[Target], list[Runtime]]


REGISTRY: dict[str, RuntimeKind] = {}


def register(kind: RuntimeKind) -> RuntimeKind:
    if kind.name in REGISTRY:
        raise ValueError(f"runtime {kind.name!r} is registered twice")
    REGISTRY[kind.name] = kind
    return kind


def all_rows(target: Target) -> list[Runtime]:
    """Every registered runtime's rows, in table order; each row knows its registered name."""
    rows: list[Runtime] = []
    for kind in sorted(REGISTRY.values(), key=lambda k: (k.order, k.name)):
        for row in kind.rows(target):
            row.kind = kind.name
            rows.append(row)
    return rows


def matches(row: Runtime, selector: str) -> bool:
    return selector in (row.kind, row.name, row.device)


def select(rows: list[Runtime], selectors: tuple[str, ...], where: str) -> list[Runtime]:
    """The rows any selector names (all rows when there is none); unknown names are errors."""
    known = sorted({r.kind for r in rows} | {r.name for r in rows} | set(DEVICES))
    unknown = [s for s in selectors if s not in known]
    if unknown:
        near = difflib.get_close_matches(unknown[0], known, n=1, cutoff=0.5)
        raise UsageError(
            f"{where}: unknown runtime '{unknown[0]}'"
            + (f"; did you mean '{near[0]}'?" if near else "")
            + f"\n  hint: known runtimes: {', '.join(sorted({r.kind for r in rows}))}"
            + f"; rows: {', '.join(r.name for r in rows)}"
        )
    if not selectors:
        return rows
    return [r for r in rows if any(matches(r, s) for s in selectors)]
