"""Formatting for the terminal and for tools: the shape table of `check` and its JSON form.

Takes a ShapeTrace; returns text. Collect (shapes.py), then format (here): no arithmetic here.
"""

from __future__ import annotations

import json

from ..layers.base import fmt_shape
from .shapes import ShapeTrace


def check_table(trace: ShapeTrace) -> str:
    """The shape table; a graph (a layer reading anything but the layer before it) gets an
    `inputs` column after `type`, a chain's table is unchanged."""
    spec = trace.spec
    graph = not trace.is_chain
    header = ("layer", "type", "line", "output", "derivation", "params", "flops")
    rows = [("input", "", str(spec.input_line or ""), fmt_shape(spec.input_shape), "", "", "")]
    for t in trace.nodes:
        rows.append(
            (
                t.node.name,
                t.node.type,
                str(t.node.line),
                fmt_shape(t.out_shape),
                t.out.formula,
                f"{t.out.params:,}",
                f"{t.out.flops:,}",
            )
        )
    rows.append(
        (
            "total",
            "",
            "",
            fmt_shape(trace.output_shape),
            "",
            f"{trace.params:,}",
            f"{trace.flops:,}",
        )
    )
    right = {2, 5, 6}
    if graph:
        reads = ["inputs", ""] + [", ".join(t.node.inputs) for t in trace.nodes] + [""]
        header, *rows = [(*r[:2], k, *r[2:]) for r, k in zip([header, *rows], reads)]
        right = {3, 6, 7}
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        cells = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))
        ]
        return "  ".join(cells).rstrip()

    title = (
        f"{spec.name} ({spec.class_name}): input (N, {', '.join(map(str, spec.input_shape))})"
        f" -> output (N, {', '.join(map(str, trace.output_shape))})"
    )
    rule = "-" * len(line(header))
    body = [line(r) for r in rows]
    return "\n".join([title, "", line(header), rule, *body[:-1], rule, body[-1]])


def check_json(trace: ShapeTrace, extra: dict | None = None) -> str:
    """check --json's object; `extra` adds keys a later stage computed (the C footprint)."""
    spec = trace.spec
    value = {
        "name": spec.name,
        "class_name": spec.class_name,
        "input_shape": list(spec.input_shape),
        "output_shape": list(trace.output_shape),
        "params": trace.params,
        "flops": trace.flops,
        "layers": [
            {
                "name": t.node.name,
                "type": t.node.type,
                "inputs": list(t.node.inputs),
                "line": t.node.line,
                "input_shape": list(t.in_shape),
                "output_shape": list(t.out_shape),
                "derivation": t.out.formula,
                "params": t.out.params,
                "flops": t.out.flops,
            }
            for t in trace.nodes
        ],
    }
    value.update(extra or {})
    return json.dumps(value, indent=2)
