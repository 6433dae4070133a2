"""Targets (values): what a template may see of a layer, re-checked on the way in.

Every value arrives precomputed from the trace as a Python literal; here it is re-read with `ast`
and written back in one canonical form (double quotes, as ruff format writes them), so a value
that is not a literal cannot reach a generated file. Identifiers were validated in spec/load.py
and are checked again here. Target-neutral: no layout, no torch import.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from ..layers import Inferred

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}\Z")


@dataclass(frozen=True)
class LayerView:
    """What a fragment sees of one layer: its name and its arguments as canonical literals."""

    name: str
    args: dict[str, str]
    options: tuple[tuple[str, str], ...]


def view(name: str, out: Inferred) -> LayerView:
    return LayerView(
        identifier(name),
        {k: literal(v) for k, v in out.args.items()},
        tuple((identifier(k), literal(v)) for k, v in out.options),
    )


def identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"refusing to render {name!r}: not a validated identifier")
    return name


def literal(text: str) -> str:
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
