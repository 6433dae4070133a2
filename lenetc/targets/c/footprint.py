"""Targets (c, footprint): ShapeTrace -> `Footprint`, the memory the C target needs on a device,
stated before anyone flashes a board; and the spec's `target:` budget held against it.

From the buffer plan (plan.py): RAM is the arena (the static buffers model.c reuses from layer to
layer, and the fragments' scratch) plus one sample's input and output, which the caller holds;
flash is the weight arrays as stored (code comes on top: the build measures it, runtimes/
footprint.py). Each figure names the layer that needs most of it. `over_budget` returns one located
Problem per figure over `target.flash` / `target.ram`. No torch import.

FOOTPRINTS maps each variant of the C target ("float") to its footprint function: another variant
(int8) is one more entry, and `check` and the budget then cover it too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...check.shapes import ShapeTrace
from ...errors import Location, Problem
from ...layers.base import numel
from ...spec.config import TargetConfig
from .fragments import contract
from .plan import FLOAT_BYTES, layer_weight_floats, plan_buffers
from .views import layer_views


@dataclass(frozen=True)
class LayerBytes:
    """The bytes one spec layer needs (its weights, or its output with its scratch)."""

    layer: str
    kind: str
    line: int
    bytes: int

    @property
    def label(self) -> str:
        return f"{self.layer} ({self.kind}, line {self.line})"


@dataclass(frozen=True)
class Footprint:
    variant: str  # "float"
    arena_bytes: int  # static buffers and scratch of model.c
    weight_bytes: int  # the weight arrays, as stored
    input_bytes: int  # one sample, held by the caller
    output_bytes: int
    largest_weights: LayerBytes | None  # None: a network without weights
    largest_activation: LayerBytes | None

    @property
    def ram_bytes(self) -> int:
        return self.arena_bytes + self.input_bytes + self.output_bytes

    @property
    def flash_bytes(self) -> int:
        """Without the code: that is measured after the build compiles it."""
        return self.weight_bytes


def float_footprint(trace: ShapeTrace) -> Footprint:
    views = layer_views(trace)
    plan = plan_buffers(trace, views)
    weights, activations = [], []
    for t, view, floats in zip(trace.nodes, views, layer_weight_floats(trace, views)):
        node = t.node
        if floats:
            weights.append(LayerBytes(node.name, node.type, node.line, FLOAT_BYTES * floats))
        fragment = contract(node.type)
        if fragment.computes:
            scratch = int(view.v.get(fragment.scratch, "0")) if fragment.scratch else 0
            floats_out = numel(t.out_shape) + scratch
            activations.append(
                LayerBytes(node.name, node.type, node.line, FLOAT_BYTES * floats_out)
            )
    return Footprint(
        variant="float",
        arena_bytes=plan.arena_bytes,
        weight_bytes=plan.weight_bytes,
        input_bytes=FLOAT_BYTES * numel(trace.spec.input_shape),
        output_bytes=FLOAT_BYTES * numel(trace.output_shape),
        largest_weights=max(weights, key=lambda b: b.bytes, default=None),
        largest_activation=max(activations, key=lambda b: b.bytes, default=None),
    )


FOOTPRINTS: dict[str, Callable[[ShapeTrace], Footprint]] = {"float": float_footprint}


def footprints(trace: ShapeTrace) -> list[Footprint]:
    """Every variant's footprint, in FOOTPRINTS' order."""
    return [measure(trace) for measure in FOOTPRINTS.values()]


def kb(n: int) -> str:
    """Bytes in the unit microcontroller datasheets use: 1 KB = 1024 bytes."""
    return f"{n / 1024:,.1f} KB" if n < 1024**2 else f"{n / 1024**2:,.2f} MB"


def footprint_lines(found: list[Footprint], target: TargetConfig) -> list[str]:
    """What `lenetc check` prints under the shape table."""
    lines = []
    for f in found:
        lines.append(
            f"C target ({f.variant}) on a device: RAM {f.ram_bytes:,} bytes ({kb(f.ram_bytes)}: "
            f"arena {f.arena_bytes:,} + input {f.input_bytes:,} + output {f.output_bytes:,}); "
            f"flash {f.flash_bytes:,} bytes ({kb(f.flash_bytes)}) of weights, plus code"
        )
    if target.flash or target.ram:
        stated = [f"{k} {kb(v)}" for k, v in (("flash", target.flash), ("ram", target.ram)) if v]
        lines.append(f"target: {', '.join(stated)}: fits")
    return lines


def footprint_json(found: list[Footprint]) -> dict:
    """Per variant: the byte counts and the largest layers, for check --json and footprint.json."""
    out = {}
    for f in found:
        out[f.variant] = {
            "ram_bytes": f.ram_bytes,
            "flash_bytes": f.flash_bytes,
            "arena_bytes": f.arena_bytes,
            "weight_bytes": f.weight_bytes,
            "input_bytes": f.input_bytes,
            "output_bytes": f.output_bytes,
            "largest_weights": _layer_json(f.largest_weights),
            "largest_activation": _layer_json(f.largest_activation),
        }
    return out


def _layer_json(b: LayerBytes | None) -> dict | None:
    return (
        None if b is None else {"layer": b.layer, "type": b.kind, "line": b.line, "bytes": b.bytes}
    )


def over_budget(trace: ShapeTrace, found: list[Footprint]) -> list[Problem]:
    """One Problem per variant and memory over the spec's `target:` budget, at its YAML line."""
    target, path = trace.spec.target, trace.spec.path
    problems = []
    for f in found:
        checks = (
            ("flash", f.flash_bytes, target.flash, target.flash_line, f.largest_weights),
            ("RAM", f.ram_bytes, target.ram, target.ram_line, f.largest_activation),
        )
        for what, need, budget, line, largest in checks:
            if budget is None or need <= budget:
                continue
            text = (
                f"target.{what.lower()}: the C target ({f.variant}) needs {need:,} bytes of "
                f"{what} ({kb(need)}), over the budget of {budget:,} bytes ({kb(budget)})"
            )
            if largest is not None:
                held = "of weights" if what == "flash" else "for its output"
                text += f"; the largest layer is {largest.label}, {largest.bytes:,} bytes {held}"
            hint = f"or raise target.{what.lower()}"
            if largest is not None and what == "flash":
                hint = f"make {largest.layer} smaller (fewer features or channels), " + hint
            elif largest is not None:
                hint = f"shrink {largest.layer}'s output (fewer channels, a stride), " + hint
            problems.append(Problem(text, Location(path, line or target.line), hint=hint))
    return problems
