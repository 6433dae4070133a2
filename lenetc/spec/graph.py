"""Stage 1, load (graph): what each layer reads, and that the layers form a graph lenetc can run.

Takes a layer's `inputs:` (or nothing: then it reads the layer before it) and the names of the
layers above it; returns the tuple of names it reads, or records a located problem: a name no
layer above has (with the nearest one), the layer itself or a later one (the list is in
topological order), a count of inputs its kind cannot take. After all layers: a layer whose
output nothing reads is a dangling branch (the output is the last layer). Also splices blocks of
layers (lists inside `layers:`, usually YAML aliases) in place. No torch import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..layers import REGISTRY
from .fields import Reporter, Section, describe, nearest
from .yamlsafe import YList, line_of

INPUT = "input"  # the name of the graph input, which the first node reads
MAX_BLOCK_DEPTH = 8


def splice_blocks(raw: YList, limit: int) -> YList:
    """A list inside `layers:` is a block of layers (usually a YAML alias, `- *stage`): its
    layers take its place, in order, with the lines they carry (an alias's: the line of its use).
    Stops splicing past `limit` layers (the caller refuses that many)."""
    out = YList()
    out.line, out.item_lines = raw.line, []

    def add(items: YList, depth: int) -> None:
        for i, entry in enumerate(items):
            if isinstance(entry, YList) and depth < MAX_BLOCK_DEPTH and len(out) <= limit:
                add(entry, depth + 1)
            else:
                out.append(entry)
                out.item_lines.append(line_of(items, i))

    add(raw, 0)
    return out


def read_inputs(
    kind_name: str,
    s: Section,
    itself: str,
    layer_line: int,
    order: Sequence[tuple[str, int]],
    position: Mapping[str, int],
) -> tuple[str, ...] | None:
    """The names layer `itself` reads: its `inputs:`, each a layer above it or INPUT, else the
    layer just above. `order` lists every layer's (name, line); `position` maps a name to its
    index. Records a problem in `s` and returns None when a name is wrong."""
    index = position[itself]
    lo, hi = REGISTRY[kind_name].arity
    previous = order[index - 1][0] if index else INPUT
    line = s.line("inputs") if s.has("inputs") else layer_line
    if not s.has("inputs"):
        if lo > 1:
            s.fail(
                f"{kind_name} joins {lo} or more layers; name them in inputs",
                line,
                hint=f"e.g. inputs: [{previous}, <an earlier layer>]",
            )
            return None
        return (previous,)
    raw: Any = s.raw("inputs")
    if not isinstance(raw, YList) or not raw or not all(isinstance(r, str) for r in raw):
        s.fail(
            f"inputs: expected a list of layer names, found {describe(raw)}",
            line,
            hint="e.g. inputs: [conv1] or inputs: [bn2, relu1]; 'input' is the network's input",
        )
        return None
    if not lo <= len(raw) <= hi:
        wants = "one input" if hi == 1 else f"{lo} to {hi} inputs"
        s.fail(
            f"inputs: {kind_name} reads {wants}, found {len(raw)}",
            line,
            hint="join several layers with {type: add} or {type: cat}"
            if hi == 1
            else "name every layer it joins",
        )
        return None
    ok = True
    for ref in raw:
        if ref == INPUT or position.get(ref, index) < index:
            continue
        ok = False
        if ref == itself:
            s.fail(
                f"inputs: '{ref}' is this layer itself; a layer reads only layers above it",
                line,
                hint=f"read the layer before it ({previous})",
            )
        elif ref in position:
            s.fail(
                f"inputs: '{ref}' is defined later (line {order[position[ref]][1]}); layers are "
                "listed in the "
                "order they run, and a layer reads only layers above it",
                line,
                hint=f"move this layer below {ref}, or read a layer above it",
            )
        else:
            above = [INPUT] + [name for name, _ in order[:index]]
            near = nearest(ref, above)
            s.fail(
                f"inputs: no layer above this one is named '{ref}'",
                line,
                hint=f"did you mean '{near}'?"
                if near
                else "layers above it: " + ", ".join(above[-8:]),
            )
    return tuple(raw) if ok else None


def check_every_output_is_read(nodes: Sequence[Any], report: Reporter) -> None:
    """A layer that no later layer reads, other than the last (the output), is a dangling branch:
    its work is lost, and it almost always means a missing name in some `inputs:`."""
    read = {name for node in nodes for name in node.inputs}
    for node in nodes[:-1]:
        if node.name not in read:
            report.add(
                f"its output is never used: no later layer reads it, and only the last layer "
                f"({nodes[-1].name}) is the network's output",
                node.line,
                layer=node.label,
                hint=f"read it in a later layer's inputs (e.g. inputs: [..., {node.name}]), "
                "or remove it",
            )
