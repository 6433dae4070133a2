"""Stage 3, render: ShapeTrace -> model.py source, through the Jinja templates of a target.

A target is a folder of templates: templates/<target>/module.py.j2 lays out the file and loops over
layers without branching on a kind; templates/<target>/layers/<type>.j2 holds one fragment per kind
(macros `init` for a parametric layer's constructor, `call` for its forward expression). Every
number arrives precomputed from the trace as a Python literal, and every identifier was validated
in spec.py, so no spec text can put code into the file. Deterministic: no times, paths or versions.
No torch import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from .layers import REGISTRY
from .shapes import ShapeTrace, TracedNode

LINE_LENGTH = 88  # ruff format's default: longer lines would be reflowed by a formatter
MAX_CALLS_PER_LINE = 3  # conv -> relu -> pool reads well on one line; more nests too deep
_SAFE_FILENAME = re.compile(r"[A-Za-z0-9_.\-]{1,80}\Z")


def templates_dir() -> Path:
    """templates/ from the installed wheel (lenetc.templates) or, in a checkout, the repo root."""
    try:
        found = resources.files("lenetc.templates")
        if found.joinpath("torch", "module.py.j2").is_file():
            return Path(str(found))
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parent.parent / "templates"


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # Python source, not HTML; values are literals made in layers/
    )


@dataclass(frozen=True)
class LayerView:
    """What a fragment sees of one layer."""

    name: str
    args: dict[str, str]
    options: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Line:
    code: str
    comment: str
    comment_above: bool


def fragment(target: str, type_: str) -> Any:
    """The macros of one layer kind's fragment (jinja2 TemplateModule)."""
    return environment().get_template(f"{target}/layers/{type_}.j2").module


def render(trace: ShapeTrace, target: str = "torch") -> str:
    views = [LayerView(t.node.name, dict(t.out.args), t.out.options) for t in trace.nodes]
    attributes = [
        {"name": v.name, "init": str(fragment(target, t.node.type).init(v))}
        for t, v in zip(trace.nodes, views)
        if REGISTRY[t.node.type].module
    ]
    lines = _forward_lines(trace, views, target)
    spec = trace.spec
    source = Path(spec.path).name
    model = {
        "class_name": spec.class_name,
        "source": source if _SAFE_FILENAME.match(source) else "a spec file",
        "input_shape": _batched(spec.input_shape),
        "output_shape": _batched(trace.output_shape),
        "params": f"{trace.params:,}",
        "attributes": attributes,
        "lines": lines,
        "uses_functional": any("F." in line.code for line in lines),
    }
    return environment().get_template(f"{target}/module.py.j2").render(m=model)


def _batched(shape: tuple[int, ...]) -> str:
    return "(N, " + ", ".join(str(d) for d in shape) + ")"


def _forward_lines(trace: ShapeTrace, views: list[LayerView], target: str) -> list[Line]:
    """Group layers into forward lines: a parametric layer or flatten starts a line, and the
    functional ops after it wrap around it, as in `x = F.max_pool2d(F.relu(self.conv1(x)), 2)`."""
    groups: list[list[int]] = []
    for i, t in enumerate(trace.nodes):
        starts = REGISTRY[t.node.type].module or t.node.type == "flatten"
        if not groups or starts or len(groups[-1]) >= MAX_CALLS_PER_LINE:
            groups.append([i])
        else:
            groups[-1].append(i)
    lines = []
    for n, group in enumerate(groups):
        expr = "x"
        for i in group:
            expr = str(fragment(target, trace.nodes[i].node.type).call(views[i], expr))
        last = n == len(groups) - 1
        code = f"return {expr}" if last else f"x = {expr}"
        comment = _comment([trace.nodes[i] for i in group])
        too_long = 8 + len(code) + 2 + len(comment) + 2 > LINE_LENGTH
        lines.append(Line(code, comment, too_long))
    return lines


def _comment(group: list[TracedNode]) -> str:
    """The shape after the line, and the arithmetic of any layer that changed height or width."""
    shape = _batched(group[-1].out_shape)
    steps = [
        t.out.formula
        for t in group
        if len(t.out_shape) == 3 and len(t.in_shape) == 3 and t.out_shape[1:] != t.in_shape[1:]
    ]
    if not steps:
        return shape
    return f"{shape}: {_compose(steps)}"


def _compose(steps: list[str]) -> str:
    """`32 - 5 + 1 = 28` then `28 / 2 = 14` reads as `(32 - 5 + 1) / 2 = 14`."""
    text = steps[0]
    for step in steps[1:]:
        expr, _, value = text.rpartition(" = ")
        simple = expr and ";" not in text and ";" not in step and "," not in text
        if simple and step.startswith(value + " "):
            text = f"({expr}){step[len(value) :]}"
        else:
            text = f"{text}, then {step}"
    return text
