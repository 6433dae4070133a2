"""Targets (c, plan): ShapeTrace + layer views -> `BufferPlan`, the C target's memory, computed
once per render: where each node's output lives (`x`, `y` or a static buffer), each buffer's
size, where the final output is, the scratch the fragments ask for and the floats of the weights.
No torch import.

A buffer is reused once every reader of what it holds has run; an in-place fragment writes its
input's buffer when it is that tensor's last reader; an alias (flatten, dropout) is its input's
memory. Graphs need nothing more: liveness is over each node's explicit inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ...check.shapes import ShapeTrace
from ...layers.base import numel
from ...spec.load import INPUT
from .fragments import contract
from .views import CLayer

FLOAT_BYTES = 4


@dataclass(frozen=True)
class BufferPlan:
    """The memory of model.c, in floats; `where` maps every node name (and INPUT) to the C
    expression holding its output: `x` (the model's input), `y` (the model's output) or `bufK`."""

    where: Mapping[str, str]
    buffers: tuple[int, ...]  # floats of buf0, buf1, ...
    final: str  # where the last node's output ends: "y", or a buffer copied into y at the end
    scratch: int  # floats of the one scratch buffer the layers share (`scratch`: a padded input)
    weights: int  # floats of every array in model_weights.h, lane padding included

    @property
    def arena_bytes(self) -> int:
        """Static memory model.c holds besides the weights: buffers and scratch."""
        return FLOAT_BYTES * (sum(self.buffers) + self.scratch)

    @property
    def weight_bytes(self) -> int:
        """model_weights.h's arrays, as stored (read-only data)."""
        return FLOAT_BYTES * self.weights


def plan_buffers(trace: ShapeTrace, views: Sequence[CLayer]) -> BufferPlan:
    """The plan for `trace`, whose views (views.layer_views) are given in trace order."""
    nodes = trace.nodes
    computes = [contract(t.node.type).computes for t in nodes]
    last_read: dict[str, int] = {}
    alias: dict[str, str] = {INPUT: INPUT}
    for i, t in enumerate(nodes):
        sources = [alias[s] for s in t.node.inputs]
        for s in sources:
            last_read[s] = i
        alias[t.node.name] = t.node.name if computes[i] else sources[0]
    final = alias[nodes[-1].node.name]
    last_read[final] = len(nodes)
    where: dict[str, str] = {INPUT: "x"}
    sizes: list[int] = []
    free_after: list[int] = []  # per buffer: the node index after which it is free
    for i, t in enumerate(nodes):
        name = t.node.name
        sources = [alias[s] for s in t.node.inputs]
        if not computes[i]:
            where[name] = where[sources[0]]
            continue
        own = where[sources[0]]
        in_place = contract(t.node.type).in_place
        if name == final and not in_place:
            where[name] = "y"
            continue
        if in_place and own.startswith("buf") and last_read[sources[0]] == i:
            k = int(own[3:])
        else:
            k = next((j for j, after in enumerate(free_after) if after < i), len(sizes))
            if k == len(sizes):
                sizes.append(0)
                free_after.append(0)
        sizes[k] = max(sizes[k], numel(t.out_shape))
        free_after[k] = last_read.get(name, i)
        where[name] = f"buf{k}"
    return BufferPlan(
        where=dict(where),
        buffers=tuple(sizes),
        final=where[final],
        scratch=max((_scratch(view) for view in views), default=0),
        weights=sum(_stored_floats(t.out.tensors, view) for t, view in zip(nodes, views)),
    )


def _scratch(view: CLayer) -> int:
    key = contract(view.kind).scratch
    return int(view.v.get(key, "0")) if key else 0


def _stored_floats(tensors: Sequence[tuple[str, tuple[int, ...]]], view: CLayer) -> int:
    """Floats of a layer's arrays as stored: the last stored axis padded to the lanes."""
    fragment = contract(view.kind)
    lanes = int(view.v.get("pad_lanes", "0"))
    total = 0
    for name, shape in tensors:
        perm = fragment.layout.get(name, tuple(range(len(shape))))
        last = shape[perm[-1]]
        padded = lanes if name in fragment.pad_to_lanes and lanes else last
        total += numel(shape) // last * padded
    return total
