"""The registry's arithmetic as data: how a layer's output size came about, one tree per axis.

A shape rule returns each axis of a window (conv2d, pooling) as an `Axis`: an `Expr` tree (a
number, or an operator over operands) and the size it evaluates to, plus a note where the
arithmetic is not the whole story (ceil_mode dropping a window). `check` prints the trees as text
(`text`); a target composes them across the layers of one statement by substituting one axis's
tree for the next one's input (`compose`), and never re-reads text. No torch import.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Binding strength of each operator when printed; "*" is written tight (2*1, 2*(3 - 1)).
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "//": 2}
_CALLS = ("ceil", "floor")
GROUP = "()"  # an operand kept in parentheses as written (a composed step)


@dataclass(frozen=True)
class Expr:
    """A number (op "", `number`), an operator over two operands (+, -, *, /, //), a call (ceil,
    floor) of one, or GROUP: one operand in parentheses."""

    op: str = ""
    operands: tuple[Expr, ...] = ()
    number: int = 0

    def leftmost(self) -> Expr:
        return self.operands[0].leftmost() if self.operands else self


def num(value: int) -> Expr:
    return Expr(number=value)


def op(operator: str, *operands: Expr | int) -> Expr:
    return Expr(operator, tuple(num(o) if isinstance(o, int) else o for o in operands))


@dataclass(frozen=True)
class Axis:
    """One axis's derivation: `expr = value`, then `note` (", less the window ...") if any; an
    axis with a note is not plain arithmetic and composes only as ", then"."""

    expr: Expr
    value: int
    note: str = ""

    @property
    def text(self) -> str:
        return f"{fmt(self.expr)} = {self.value}{self.note}"


def fmt(e: Expr) -> str:
    """The tree as check prints it: `(32 + 2*1 - 5) / 2 + 1`, `ceil(28 / 2)`."""
    if not e.op:
        return str(e.number)
    if e.op == GROUP:
        return f"({fmt(e.operands[0])})"
    if e.op in _CALLS:
        return f"{e.op}({fmt(e.operands[0])})"
    left, right = e.operands
    level = _PRECEDENCE[e.op]
    a = _wrap(left, level, right_side=False)
    b = _wrap(right, level, right_side=True)
    return f"{a}*{b}" if e.op == "*" else f"{a} {e.op} {b}"


def _wrap(e: Expr, level: int, right_side: bool) -> str:
    inner = _PRECEDENCE.get(e.op, 3)  # numbers, calls and groups bind tightest
    needs = inner < level or (right_side and inner == level)
    return f"({fmt(e)})" if needs else fmt(e)


def axes_text(axes: Sequence[Axis]) -> str:
    """One axis (square: height and width alike) as its text; two as `h: ...; w: ...`."""
    if len(axes) == 1:
        return axes[0].text
    return f"h: {axes[0].text}; w: {axes[1].text}"


def compose(steps: Sequence[Sequence[Axis] | str]) -> str:
    """Chain the derivations of consecutive layers, per axis: `32 - 5 + 1 = 28` then `28 / 2 = 14`
    reads `(32 - 5 + 1) / 2 = 14`. A step is its axes (one when square) or its text; text, and
    an axis with a note, join with `, then`."""
    per_axis = [
        s if not isinstance(s, str) and (len(s) == 2 or not s[0].note) else None for s in steps
    ]
    if all(a is not None for a in per_axis) and any(len(a) == 2 for a in per_axis):
        h = _chain([a[0] for a in per_axis])
        w = _chain([a[-1] for a in per_axis])
        return f"h: {h}; w: {w}"
    return _chain(
        [s if isinstance(s, str) else (s[0] if len(s) == 1 else axes_text(s)) for s in steps]
    )


def _chain(items: Sequence[Axis | str]) -> str:
    current: Axis | str = items[0]
    for item in items[1:]:
        text = current if isinstance(current, str) else current.text
        step = item if isinstance(item, str) else item.text
        nests = (
            isinstance(current, Axis)
            and isinstance(item, Axis)
            and not current.note
            and not item.note
            and item.expr.leftmost().number == current.value
            and len(text) + len(step) <= 60
        )
        if nests:
            inner = current.expr if not current.expr.op else Expr(GROUP, (current.expr,))
            current = Axis(_replace_leftmost(item.expr, inner), item.value)
        else:
            current = f"{text}, then {step}"
    return current if isinstance(current, str) else current.text


def _replace_leftmost(e: Expr, by: Expr) -> Expr:
    if not e.operands:
        return by
    return Expr(e.op, (_replace_leftmost(e.operands[0], by), *e.operands[1:]), e.number)
