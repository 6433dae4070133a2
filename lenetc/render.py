"""Stage 3, render: ShapeTrace -> model.py source, through the Jinja templates of a target.

A target is a folder of templates: templates/<target>/module.py.j2 lays out the file and loops over
layers without branching on a kind; templates/<target>/layers/<type>.j2 holds one fragment per kind:
macros `init` (a parametric layer's constructor) and `call` (its forward expression), and optionally
`starts_line`, where a kind departs from the default layout (a parametric layer starts a forward
line, a parameter-free op wraps the expression of the line before it).

Every value arrives precomputed from the trace as a Python literal; render re-reads each one with
`ast` and writes it back in one canonical form (double quotes, as ruff format writes them), so a
value that is not a literal cannot reach the file. Identifiers were validated in spec.py and are
checked again here. Long statements are split or wrapped the way ruff format would, so the output
is already formatted. Deterministic: no times, paths or versions. No torch import.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from .layers import REGISTRY, Inferred
from .shapes import ShapeTrace, TracedNode

LINE_LENGTH = 88  # ruff format's default: a longer line would be reflowed by a formatter
INDENT = 8  # statements in a method body
MAX_WRAPS = 2  # conv -> relu -> pool reads well on one line; a third wrapping op nests too deep
_SAFE_FILENAME = re.compile(r"[A-Za-z0-9_.\-]{1,80}\Z")
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}\Z")
_USES_F = re.compile(r"(?<![\w.])F\.")


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
        autoescape=False,  # Python source, not HTML; values are checked literals (see _literal)
    )


@dataclass(frozen=True)
class LayerView:
    """What a fragment sees of one layer: its name and its arguments as canonical literals."""

    name: str
    args: dict[str, str]
    options: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Line:
    """One statement of `forward`: physical code lines, comment lines above it, or one inline."""

    code: tuple[str, ...]
    above: tuple[str, ...] = ()
    inline: str = ""
    layers: tuple[int, ...] = field(default=(), compare=False)  # indices into trace.nodes


def fragment(target: str, type_: str) -> Any:
    """The macros of one layer kind's fragment (a jinja2 TemplateModule)."""
    return environment().get_template(f"{target}/layers/{type_}.j2").module


def starts_line(target: str, type_: str) -> bool:
    """Whether a layer begins a statement in forward (its fragment may say; else: parametric)."""
    declared = getattr(fragment(target, type_), "starts_line", None)
    return REGISTRY[type_].module if declared is None else bool(declared)


def render(trace: ShapeTrace, target: str = "torch") -> str:
    views = [_view(t.node.name, t.out) for t in trace.nodes]
    attributes = [
        _statement(f"self.{v.name} = ", str(fragment(target, t.node.type).init(v)), INDENT)
        for t, v in zip(trace.nodes, views)
        if REGISTRY[t.node.type].module
    ]
    lines = forward_lines(trace, target)
    spec = trace.spec
    source = Path(spec.path).name
    model = {
        "class_name": _identifier(spec.class_name),
        "source": source if _SAFE_FILENAME.match(source) else "a spec file",
        "input_shape": _batched(spec.input_shape),
        "output_shape": _batched(trace.output_shape),
        "params": f"{trace.params:,}",
        "attributes": attributes,
        "lines": lines,
        "uses_functional": any(_USES_F.search(c) for line in lines for c in line.code),
    }
    text = environment().get_template(f"{target}/module.py.j2").render(m=model)
    ast.parse(text)  # a fragment that renders invalid Python is a bug: fail here, not in train
    return text


def forward_lines(trace: ShapeTrace, target: str = "torch") -> list[Line]:
    """The statements of forward, in order, each knowing which layers it computes.

    A layer that starts a line (a parametric one, flatten, dropout) begins a statement; the
    parameter-free ops after it wrap around it, `x = F.max_pool2d(F.relu(self.conv1(x)), 2)`, up to
    MAX_WRAPS of them and as long as the statement fits on one line; else the line is split.
    """
    views = [_view(t.node.name, t.out) for t in trace.nodes]
    groups: list[list[int]] = []
    wraps = 0
    for i, t in enumerate(trace.nodes):
        functional = not REGISTRY[t.node.type].module
        if not groups or starts_line(target, t.node.type) or (functional and wraps >= MAX_WRAPS):
            groups.append([i])
            wraps = 0
        else:
            groups[-1].append(i)
            wraps += functional
    statements: list[list[int]] = []
    for group in groups:
        statements.extend(_fit(group, trace, views, target))
    lines = []
    for n, layers in enumerate(statements):
        head = "return " if n == len(statements) - 1 else "x = "
        expr = _expression(layers, trace, views, target)
        comment = _comment([trace.nodes[i] for i in layers])
        lines.append(_line(head, expr, comment, tuple(layers)))
    return lines


def _fit(group: list[int], trace: ShapeTrace, views: list[LayerView], target: str) -> list[list]:
    """Split a group into the fewest statements whose code fits on one line (a lone layer that
    does not fit is wrapped later, like ruff format would)."""
    out: list[list[int]] = []
    rest = list(group)
    while rest:
        take = len(rest)
        while take > 1:
            expr = _expression(rest[:take], trace, views, target)
            if INDENT + len("return ") + len(expr) <= LINE_LENGTH:
                break
            take -= 1
        out.append(rest[:take])
        rest = rest[take:]
    return out


def _expression(layers: list[int], trace: ShapeTrace, views: list[LayerView], target: str) -> str:
    expr = "x"
    for i in layers:
        expr = str(fragment(target, trace.nodes[i].node.type).call(views[i], expr))
    return expr


def _line(head: str, expr: str, comment: str, layers: tuple[int, ...]) -> Line:
    code = _statement(head, expr, INDENT)
    if len(code) == 1 and INDENT + len(code[0]) + 4 + len(comment) <= LINE_LENGTH:
        return Line(code, inline=comment, layers=layers)
    return Line(code, above=_wrap_comment(comment, LINE_LENGTH - INDENT - 2), layers=layers)


# ---- values and identifiers --------------------------------------------------------------------


def _view(name: str, out: Inferred) -> LayerView:
    return LayerView(
        _identifier(name),
        {k: _literal(v) for k, v in out.args.items()},
        tuple((_identifier(k), _literal(v)) for k, v in out.options),
    )


def _identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"refusing to render {name!r}: not a validated identifier")
    return name


def _literal(text: str) -> str:
    """A shape rule's literal, checked and in canonical form: 'same' -> "same", (2, 3) -> (2, 3).

    Accepts constants, tuples of them, negative numbers and products of integers (`16 * 5 * 5`);
    anything else (a name, a call, an attribute) is refused, so no value can carry code.
    """
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(f"refusing to render {text!r}: not a Python literal") from None
    return _emit(node, text)


def _emit(node: ast.AST, text: str) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _string(node.value)
    if isinstance(node, ast.Constant) and isinstance(node.value, (bool, int, float, type(None))):
        return repr(node.value)
    if isinstance(node, ast.Tuple):
        items = [_emit(e, text) for e in node.elts]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        if isinstance(node.operand, ast.Constant) and type(node.operand.value) in (int, float):
            return "-" + repr(node.operand.value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        factors = _factors(node)
        if factors:
            return " * ".join(str(f) for f in factors)
    raise ValueError(f"refusing to render {text!r}: not a Python literal")


def _factors(node: ast.AST) -> list[int] | None:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return [node.value]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        left, right = _factors(node.left), _factors(node.right)
        return left + right if left is not None and right is not None else None
    return None


def _string(value: str) -> str:
    """A string literal as ruff format writes it: double quotes unless that needs more escapes."""
    plain = repr(value)
    if '"' in value or "'" in value:
        return plain
    return '"' + plain[1:-1] + '"'


def _batched(shape: tuple[int, ...]) -> str:
    return "(N, " + ", ".join(str(d) for d in shape) + ")"


# ---- layout: statements as ruff format would write them ---------------------------------------


def _statement(head: str, expr: str, indent: int) -> tuple[str, ...]:
    """`head + expr` on one line if it fits; else the call's arguments on one indented line;
    else one argument per line with a trailing comma (ruff format's three steps)."""
    one = head + expr
    if indent + len(one) <= LINE_LENGTH:
        return (one,)
    call = ast.parse(expr, mode="eval").body
    if not isinstance(call, ast.Call):
        return (one,)
    func = ast.get_source_segment(expr, call.func)
    args = [ast.get_source_segment(expr, a) for a in [*call.args, *call.keywords]]
    joined = ", ".join(args)
    if indent + 4 + len(joined) <= LINE_LENGTH:
        return (f"{head}{func}(", f"    {joined}", ")")
    return (f"{head}{func}(", *(f"    {a}," for a in args), ")")


def _wrap_comment(text: str, width: int) -> tuple[str, ...]:
    """Comment lines of at most `width`, broken after `;` or `,` where possible, else at spaces."""
    lines: list[str] = []
    current = ""
    for piece in re.split(r"(?<=[;,]) ", text):
        for word in [piece] if len(piece) <= width else piece.split(" "):
            candidate = f"{current} {word}" if current else word
            if len(candidate) <= width or not current:
                current = candidate
            else:
                lines.append(current)
                current = word
    lines.append(current)
    return tuple(lines)


# ---- comments: the shape after the line and how its height and width came about ---------------


def _comment(group: list[TracedNode]) -> str:
    """`(N, 6, 14, 14): (32 - 5 + 1) / 2 = 14`: the shape after the statement, then the arithmetic
    of every layer in it that changed height or width, or of the flatten that made the features."""
    shape = _batched(group[-1].out_shape)
    steps = [t.out.formula for t in group if _explains(t)]
    if not steps:
        return shape
    return f"{shape}: {compose(steps)}"


def _explains(t: TracedNode) -> bool:
    if not t.out.formula:
        return False
    if len(t.in_shape) == 3 and len(t.out_shape) == 3:
        return t.out_shape[1:] != t.in_shape[1:]
    return len(t.in_shape) == 3 and len(t.out_shape) == 1  # flatten: 16 x 5 x 5 = 400


_ARITHMETIC = re.compile(r"[0-9()+\-*/ ]*(?:(?:ceil|floor)\([0-9()+\-*/ ]*)*= \d+\Z")


def compose(steps: list[str]) -> str:
    """Chain the formulas of consecutive layers, per axis: `32 - 5 + 1 = 28` then `28 / 2 = 14`
    reads `(32 - 5 + 1) / 2 = 14`. Formulas that are not plain arithmetic join with `, then`."""
    per_axis = [_axes(s) for s in steps]
    if all(a is not None for a in per_axis) and any(len(a) == 2 for a in per_axis):
        h = _chain([a[0] for a in per_axis])
        w = _chain([a[-1] for a in per_axis])
        return f"h: {h}; w: {w}"
    return _chain(steps)


def _axes(step: str) -> tuple[str, ...] | None:
    m = re.fullmatch(r"h: (.*); w: (.*)", step)
    if m:
        return (m.group(1), m.group(2))
    return (step,) if _ARITHMETIC.match(step) else None


def _chain(steps: list[str]) -> str:
    text = steps[0]
    for step in steps[1:]:
        expr, _, value = text.rpartition(" = ")
        first = re.search(r"\d+", step)
        nests = _ARITHMETIC.match(text) and _ARITHMETIC.match(step) and first
        if nests and first.group() == value and len(text) + len(step) <= 60:
            inner = expr if re.fullmatch(r"\d+", expr) else f"({expr})"
            text = step[: first.start()] + inner + step[first.end() :]
        else:
            text = f"{text}, then {step}"
    return text
