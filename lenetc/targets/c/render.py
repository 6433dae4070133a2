"""Targets (c, render): ShapeTrace (+ the dataset's facts) -> the C target's files as text:
model.h (the API and sizes), model.c (one static function per computing layer, and the forward
function), main.c (an example program) and a Makefile. Views, the buffer plan and the fragment
contracts are computed once here and handed to the templates. No torch import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...artifacts import write_text
from ...check.shapes import ShapeTrace
from ..templates import environment
from .about import DatasetInfo, model_view
from .fragments import TARGET, contract
from .indent import indent_by_braces
from .plan import BufferPlan, plan_buffers
from .views import CLayer, layer_views

FILES = ("model.h", "model.c", "main.c", "Makefile")


@dataclass(frozen=True)
class Step:
    """One statement of the forward function: a call, or a comment for an aliasing layer."""

    layer: CLayer
    call: str
    alias: bool = False


def render_c(trace: ShapeTrace, data: DatasetInfo | None = None) -> dict[str, str]:
    """The C target's files (without the weights file), by file name."""
    layers = layer_views(trace)
    plan = plan_buffers(trace, layers)
    fragments = [contract(c.kind) for c in layers]
    model = model_view(trace, data, plan)
    model.update(
        layers=layers,
        steps=forward_steps(trace, layers, plan),
        buffers=[str(size) for size in plan.buffers],
        uses_math=any(f.needs_math for f in fragments),
        uses_float_h=any(f.needs_float_h for f in fragments),
        defines=[str(f.define(c)) for f, c in zip(fragments, layers) if f.computes],
        final=plan.final,
    )
    env = environment()
    files = {name: env.get_template(f"{TARGET}/{name}.j2").render(m=model) for name in FILES}
    for name in ("model.c", "main.c"):
        files[name] = indent_by_braces(files[name])
    return files


def forward_steps(trace: ShapeTrace, layers: Sequence[CLayer], plan: BufferPlan) -> list[Step]:
    """The forward function's statements: each computing layer called on where its inputs
    live, writing where the plan puts its output."""
    steps = []
    for t, view in zip(trace.nodes, layers):
        if not contract(t.node.type).computes:
            steps.append(Step(view, "", alias=True))
            continue
        args = [plan.where[s] for s in t.node.inputs] + [plan.where[t.node.name]]
        steps.append(Step(view, f"{view.name}({', '.join(args)});"))
    return steps


def write_c(folder: Path, files: Mapping[str, str]) -> None:
    """Write the C files into `folder`, each atomically; other files there are left alone (a
    build's model_weights.h survives a re-render)."""
    for name, text in files.items():
        write_text(Path(folder) / name, text)
