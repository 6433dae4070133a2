"""Targets (c, render): ShapeTrace (+ the dataset's facts) -> the C target's files as text:
model.h (the API and sizes), model.c (one kernel per layer kind that the model uses, and the
forward function that calls them with constants), main.c (an example program) and a Makefile.
Views, the buffer plan and the fragment contracts are computed once here and handed to the
templates. No torch import.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...artifacts import write_text
from ...check.shapes import ShapeTrace
from ..templates import environment
from .about import DatasetInfo, model_view
from .fragments import TARGET, contract
from .indent import COLUMNS, indent_by_braces, wrap_long_calls
from .plan import BufferPlan, plan_buffers
from .views import CLayer, layer_views

FILES = ("model.h", "model.c", "main.c", "Makefile")


@dataclass(frozen=True)
class Step:
    """One statement of the forward function: the layer's comment (its lines, within the column
    limit), then its kernel's call; an aliasing layer has the comment alone."""

    layer: CLayer
    call: str
    comment: tuple[str, ...]
    alias: bool = False


_FORWARD_INDENT = 8  # the calls sit in the forward function's loop over samples


@dataclass(frozen=True)
class Kernel:
    """What a fragment's `kernel` macro sees: its kind and, over the model's layers of that kind,
    the largest of each integer value (`max.acc`: the accumulators a convolution needs)."""

    kind: str
    max: Mapping[str, int]


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
        scratch=str(plan.scratch) if plan.scratch else "",
        uses_math=any(f.needs_math for f in fragments),
        uses_float_h=any(f.needs_float_h for f in fragments),
        windowed=any(f.windowed for f in fragments),
        kernels=[str(contract(k.kind).kernel(k)) for k in kernels(layers)],
        final=plan.final,
    )
    env = environment()
    files = {name: env.get_template(f"{TARGET}/{name}.j2").render(m=model) for name in FILES}
    files["main.c"] = indent_by_braces(files["main.c"])
    files["model.c"] = wrap_long_calls(indent_by_braces(files["model.c"]))
    return files


def kernels(layers: Sequence[CLayer]) -> list[Kernel]:
    """One kernel per computing kind, in the order the model first uses each."""
    seen: dict[str, list[CLayer]] = {}
    for view in layers:
        if contract(view.kind).computes:
            seen.setdefault(view.kind, []).append(view)
    out = []
    for kind, views in seen.items():
        most: dict[str, int] = {}
        for view in views:
            for key, value in view.v.items():
                if value.isdigit():
                    most[key] = max(most.get(key, 0), int(value))
        out.append(Kernel(kind, most))
    return out


def forward_steps(trace: ShapeTrace, layers: Sequence[CLayer], plan: BufferPlan) -> list[Step]:
    """The forward function's statements: each computing layer's kernel called on where its
    inputs live, writing where the plan puts its output."""
    steps = []
    for t, view in zip(trace.nodes, layers):
        fragment = contract(t.node.type)
        if not fragment.computes:
            text = f"{view.layer} ({view.kind}): {view.comment}, the same memory"
            steps.append(Step(view, "", _comment(text), alias=True))
            continue
        args = [plan.where[s] for s in t.node.inputs] + [plan.where[t.node.name]]
        text = f"{view.layer} ({view.kind}, spec line {view.line}): {view.comment}"
        steps.append(Step(view, str(fragment.call(view, args)), _comment(text)))
    return steps


def _comment(text: str) -> tuple[str, ...]:
    """A block comment's lines, wrapped at spaces to fit the column limit."""
    width = COLUMNS - _FORWARD_INDENT - len("/*  */")
    lines = textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)
    return tuple(
        ("/* " if i == 0 else "* ") + line + (" */" if i == len(lines) - 1 else "")
        for i, line in enumerate(lines)
    )


def write_c(folder: Path, files: Mapping[str, str]) -> None:
    """Write the C files into `folder`, each atomically; other files there are left alone (a
    build's model_weights.h survives a re-render)."""
    for name, text in files.items():
        write_text(Path(folder) / name, text)
