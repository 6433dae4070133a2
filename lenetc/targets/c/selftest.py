"""Targets (c, selftest): golden samples -> c/selftest.c, a program that checks the C target
against them on any machine with a C compiler and printf, a microcontroller included.

Takes the ShapeTrace, the golden inputs and the torch module's outputs for them (io.npz, as float32
arrays or nested sequences), the true labels (-1 for the random rows) and verify's tolerances;
returns selftest.c's text (templates/c/selftest.c.j2): every value as an exact C99 hex float, the
check |out - expected| <= atol + rtol * |expected| per output, the largest error printed, exit
status 1 when any output is outside. No torch import.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...check.shapes import ShapeTrace
from ..templates import environment
from .about import model_view
from .literals import hex_float

FILE = "selftest.c"
PER_LINE = 4  # values per source line, as in model_weights.h


def render_selftest(
    trace: ShapeTrace,
    inputs: Sequence,
    outputs: Sequence,
    labels: Sequence[int],
    atol: float,
    rtol: float,
) -> str:
    rows_in = [_flat(x) for x in inputs]
    rows_out = [_flat(y) for y in outputs]
    if len(rows_in) != len(rows_out) or not rows_in:
        raise ValueError(f"{len(rows_in)} golden inputs but {len(rows_out)} outputs")
    real = sum(1 for label in labels if int(label) >= 0)
    floats = sum(len(r) for r in rows_in) + sum(len(r) for r in rows_out)
    s = {
        "count": str(len(rows_in)),
        "real": str(real),
        "random": str(len(rows_in) - real),
        "atol": _double(atol),
        "rtol": _double(rtol),
        "flash": f"{4 * floats:,}",
        "inputs": [_lines(r) for r in rows_in],
        "outputs": [_lines(r) for r in rows_out],
    }
    model = model_view(trace, None)
    return environment().get_template(f"c/{FILE}.j2").render(m=model, s=s)


def _flat(values) -> list[float]:
    """A sample's values in C order (channel-major, as torch), from an array or nested lists."""
    if hasattr(values, "ravel"):
        return [float(v) for v in values.ravel()]
    if isinstance(values, (int, float)):
        return [float(values)]
    return [v for item in values for v in _flat(item)]


def _lines(values: list[float]) -> list[str]:
    return [
        ", ".join(hex_float(v) for v in values[i : i + PER_LINE]) + ","
        for i in range(0, len(values), PER_LINE)
    ]


def _double(value: float) -> str:
    text = repr(float(value))
    return text if ("e" in text or "." in text) else text + ".0"
