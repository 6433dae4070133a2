"""Look (draw): ShapeTrace -> Figure, the geometry of the LeNet-5-style drawing. No torch import.

A drawn block is one tensor a person would point at: feature maps (C, H, W) as C stacked planes
sized by H x W, features (N,) as a column sized by log N. Every spec layer belongs to exactly one
block, in one of three roles:
- `block`: it makes the block (conv1 -> `C1: 6@28x28`), its operation written on the arrow in;
- `after`: an elementwise op on its input's block alone (relu, dropout, batch norm), listed under
  that block;
- `before`: a reshape into the next block (flatten), written on the arrow with that block's op.
Blocks are placed in columns by depth (the longest path from the input, walking each node's
`inputs`), so branches of a graph stand side by side in one column and joins read several arrows.
Every number the template needs is computed here; the template holds no arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..check.shapes import ShapeTrace, TracedNode
from ..layers import REGISTRY
from ..layers.base import Shape, numel
from ..spec.load import INPUT

MAX_PLANES = 8  # planes drawn per block; the count in the label says how many there are
PLANE_STEP = 5  # offset between stacked planes, px
PX_PER_PIXEL = 3  # a 32 x 32 map is drawn 96 px wide
MAX_PLANE, MIN_PLANE = 112, 12
COLUMN_W = 16  # width of a fully connected column
CHAR_W = 6.4  # width of one character at the drawing's 11 px font, for spacing only
LINE_H = 13
LABEL_H = 18  # room above a block for its `C1: 6@28x28` line
MARGIN = 24
ROW_GAP = 36
MIN_GAP = 56  # horizontal room for an arrow and its label

# The letter of a block in the LeNet-5 figure's naming (C1, S2, ... F6); other kinds use the
# first letter of their type.
LETTER = {
    "conv2d": "C",
    "max_pool2d": "S",
    "avg_pool2d": "S",
    "adaptive_avg_pool2d": "S",
    "linear": "F",
    "batch_norm2d": "N",
    "add": "A",
    "cat": "K",
}


def _pair(v: Any) -> str:
    h, w = v if isinstance(v, (tuple, list)) else (v, v)
    return f"{h}x{w}"


def _stride(a: Mapping[str, Any], default: Any) -> str:
    s = a.get("stride") or default
    h, w = s if isinstance(s, (tuple, list)) else (s, s)
    return "" if (h, w) == (1, 1) or s == default else f" /{h}" if h == w else f" /{h}x{w}"


# The words on the arrow into a block: what the operation does, as the LeNet-5 figure says it.
OPERATION: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "conv2d": lambda a: f"conv {_pair(a['kernel_size'])}" + _stride(a, 1),
    "max_pool2d": lambda a: f"max pool {_pair(a['kernel_size'])}" + _stride(a, a["kernel_size"]),
    "avg_pool2d": lambda a: f"avg pool {_pair(a['kernel_size'])}" + _stride(a, a["kernel_size"]),
    "adaptive_avg_pool2d": lambda a: f"adaptive pool {_pair(a['output_size'])}",
    "linear": lambda a: "full connection",
    "add": lambda a: "add",
    "cat": lambda a: "concat",
}


def operation(t: TracedNode) -> str:
    describe = OPERATION.get(t.node.type)
    return describe(t.node.args) if describe else t.node.type


def size_text(shape: Shape) -> str:
    """`6@28x28` for maps, `120` for features: the LeNet-5 figure's notation."""
    if len(shape) == 1:
        return str(shape[0])
    return f"{shape[0]}@" + "x".join(str(d) for d in shape[1:])


def shape_attr(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


@dataclass(frozen=True)
class Plane:
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class Mark:
    """One spec layer's element in the drawing (every layer has exactly one)."""

    name: str
    type: str
    role: str  # block | after | before
    shape: str  # 6x28x28, as check --json's output_shape
    size: str  # 6@28x28
    text: str
    x: float
    y: float
    title: str


@dataclass(frozen=True)
class Block:
    id: str
    tag: str  # C1, S2, F6, INPUT, OUTPUT
    size: str
    shape: str
    kind: str  # maps | column
    planes: tuple[Plane, ...]
    x: float
    y: float
    w: float
    h: float
    label_x: float
    label_y: float
    caption_y: float
    mark: Mark | None  # the layer that makes the block (None for the input)
    after: tuple[Mark, ...]  # elementwise ops listed under it


@dataclass(frozen=True)
class Edge:
    path: str
    skip: bool  # routed over the blocks between, for a connection that skips columns


@dataclass(frozen=True)
class OpLabel:
    x: float
    y: float
    text: str


@dataclass(frozen=True)
class Figure:
    title: str
    width: float
    height: float
    blocks: tuple[Block, ...]
    edges: tuple[Edge, ...]
    ops: tuple[OpLabel, ...]  # the operation on the arrow into each block
    befores: tuple[Mark, ...]  # reshapes written on an arrow
    layers: int


def _r(v: float) -> float:
    return round(v, 1)


def _roles(trace: ShapeTrace) -> dict[str, str]:
    """Each node's role: block, after (elementwise on its input's block) or before (a reshape)."""
    consumers: dict[str, list[str]] = {}
    for t in trace.nodes:
        for i in t.node.inputs:
            consumers.setdefault(i, []).append(t.node.name)
    by_name = {t.node.name: t for t in trace.nodes}
    last = trace.nodes[-1].node.name

    def param_free(t: TracedNode) -> bool:
        kind = REGISTRY.get(t.node.type)
        return t.out.params == 0 or (kind is not None and kind.folds_into_input)

    def elementwise(t: TracedNode) -> bool:
        (src, *more) = t.node.inputs
        return (
            not more
            and src != INPUT
            and consumers.get(src) == [t.node.name]
            and t.out_shape == t.in_shape
            and param_free(t)
        )

    def reshape(t: TracedNode) -> bool:
        users = consumers.get(t.node.name, [])
        return (
            len(t.node.inputs) == 1
            and t.out.params == 0
            and t.out_shape != t.in_shape
            and numel(t.out_shape) == numel(t.in_shape)
            and t.node.name != last
            and len(users) == 1
            and len(by_name[users[0]].node.inputs) == 1
            and not elementwise(by_name[users[0]])
        )

    roles: dict[str, str] = {}
    for t in trace.nodes:
        if reshape(t):
            roles[t.node.name] = "before"
        elif elementwise(t) and roles[t.node.inputs[0]] != "before":
            roles[t.node.name] = "after"
        else:
            roles[t.node.name] = "block"
    return roles


def _extent(shape: Shape) -> tuple[str, float, float, int]:
    """(kind, plane width, plane height, planes drawn) for a tensor of this shape."""
    if len(shape) == 1:
        height = min(max(16 * math.log2(shape[0] + 1), 20), 160)
        return "column", COLUMN_W, _r(height), 1
    spatial = shape[1:] if len(shape) == 3 else (1, numel(shape[1:]))
    h, w = spatial
    f = min(PX_PER_PIXEL, MAX_PLANE / max(h, w))
    return "maps", _r(max(w * f, MIN_PLANE)), _r(max(h * f, MIN_PLANE)), min(shape[0], MAX_PLANES)


@dataclass
class _Draft:
    id: str
    shape: Shape
    sources: list[str]  # block ids feeding it
    maker: TracedNode | None
    before: list[TracedNode]
    after: list[TracedNode]
    depth: int = 0


def layout(trace: ShapeTrace) -> Figure:
    roles = _roles(trace)
    by_name = {t.node.name: t for t in trace.nodes}
    block_of: dict[str, str] = {INPUT: INPUT}
    drafts: dict[str, _Draft] = {INPUT: _Draft(INPUT, trace.spec.input_shape, [], None, [], [])}
    for t in trace.nodes:
        name = t.node.name
        if roles[name] == "after":
            block_of[name] = block_of[t.node.inputs[0]]
            drafts[block_of[name]].after.append(t)
            drafts[block_of[name]].shape = t.out_shape
        elif roles[name] == "block":
            before: list[TracedNode] = []
            sources = []
            for src in t.node.inputs:
                while src != INPUT and roles[src] == "before":
                    before.insert(0, by_name[src])
                    src = by_name[src].node.inputs[0]
                sources.append(block_of[src])
            block_of[name] = name
            depth = 1 + max(drafts[s].depth for s in sources)
            drafts[name] = _Draft(name, t.out_shape, sources, t, before, [], depth)
    for t in trace.nodes:  # a reshape belongs to the block it feeds
        if roles[t.node.name] == "before":
            user = t
            while roles[user.node.name] == "before":
                user = next(u for u in trace.nodes if user.node.name in u.node.inputs)
            block_of[t.node.name] = block_of[user.node.name]
    return _place(trace, list(drafts.values()), block_of)


def _place(trace: ShapeTrace, drafts: list[_Draft], block_of: dict[str, str]) -> Figure:
    columns: dict[int, list[_Draft]] = {}
    for d in drafts:
        columns.setdefault(d.depth, []).append(d)
    last_block = block_of[trace.nodes[-1].node.name]
    tags: dict[str, str] = {}
    for index, d in enumerate(drafts):
        if d.maker is None:
            tags[d.id] = "INPUT"
        elif d.id == last_block:
            tags[d.id] = "OUTPUT"
        else:
            tags[d.id] = LETTER.get(d.maker.node.type, d.maker.node.type[:1].upper()) + str(index)

    def label_of(d: _Draft) -> str:
        return f"{tags[d.id]}: {size_text(d.shape)}"

    def body(d: _Draft) -> tuple[str, float, float, int, float, float]:
        kind, pw, ph, n = _extent(d.shape)
        return kind, pw, ph, n, pw + (n - 1) * PLANE_STEP, ph + (n - 1) * PLANE_STEP

    def captions(d: _Draft) -> list[str]:
        return ([d.maker.node.name] if d.maker else []) + [a.node.name for a in d.after]

    def op_lines(d: _Draft) -> list[str]:
        return [b.node.type for b in d.before] + ([operation(d.maker)] if d.maker else [])

    def stack_h(d: _Draft) -> float:
        return LABEL_H + body(d)[5] + LINE_H * len(captions(d)) + 4

    # Column widths, and the room before each column for the arrow and its words.
    col_w, gap = {}, {}
    for depth, ds in columns.items():
        col_w[depth] = max(
            max(body(d)[4], CHAR_W * len(label_of(d)), *(CHAR_W * len(c) for c in captions(d)))
            for d in ds
        )
        gap[depth] = max([MIN_GAP] + [CHAR_W * len(line) + 18 for d in ds for line in op_lines(d)])
    heights = {
        depth: sum(stack_h(d) for d in ds) + ROW_GAP * (len(ds) - 1)
        for depth, ds in columns.items()
    }
    # Single blocks sit on one axis, as in the LeNet-5 figure; a column of branches is centred
    # on it.
    upper = {
        depth: LABEL_H + body(ds[0])[5] / 2 if len(ds) == 1 else heights[depth] / 2
        for depth, ds in columns.items()
    }
    top = MARGIN + LINE_H + 22  # the title, then the lane for connections that skip columns
    axis = top + max(upper.values())
    height = axis + max(heights[d] - upper[d] for d in columns) + MARGIN
    x = MARGIN
    placed: dict[str, Block] = {}
    ops: list[OpLabel] = []
    befores: list[Mark] = []
    for depth in sorted(columns):
        if depth:
            x += gap[depth]
        y = axis - upper[depth]
        for d in columns[depth]:
            kind, pw, ph, n, bw, bh = body(d)
            bx = x + (col_w[depth] - bw) / 2
            by = y + LABEL_H
            planes = tuple(
                Plane(_r(bx + i * PLANE_STEP), _r(by + i * PLANE_STEP), pw, ph)
                for i in reversed(range(n))
            )
            cap_y = by + bh + LINE_H
            marks_y = [cap_y + LINE_H * i for i in range(len(captions(d)))]
            mark = _mark(d.maker, "block", tags[d.id], bx + bw / 2, by) if d.maker else None
            after = tuple(
                _mark(a, "after", a.node.type, bx + bw / 2, marks_y[i + 1])
                for i, a in enumerate(d.after)
            )
            placed[d.id] = Block(
                id=d.id,
                tag=tags[d.id],
                size=size_text(d.shape),
                shape=shape_attr(d.shape),
                kind=kind,
                planes=planes,
                x=_r(bx),
                y=_r(by),
                w=_r(bw),
                h=_r(bh),
                label_x=_r(bx + bw / 2),
                label_y=_r(by - 6),
                caption_y=_r(cap_y),
                mark=mark,
                after=after,
            )
            if d.maker is not None:
                mid_x = x - gap[depth] / 2
                lines = op_lines(d)
                line_y = by + bh / 2 - 6 - LINE_H * (len(lines) - 1)
                for i, b in enumerate(d.before):
                    befores.append(_mark(b, "before", b.node.type, mid_x, line_y + LINE_H * i))
                ops.append(OpLabel(_r(mid_x), _r(line_y + LINE_H * len(d.before)), lines[-1]))
            y += stack_h(d) + ROW_GAP
        x += col_w[depth]
    every = list(placed.values())
    lane = top - 10
    edges = tuple(_edge(placed[s], placed[d.id], every, lane) for d in drafts for s in d.sources)
    title = (
        f"{trace.spec.name}: {size_text(trace.spec.input_shape)} -> "
        f"{size_text(trace.output_shape)}, {trace.params:,} parameters"
    )
    return Figure(
        title=title,
        width=_r(x + MARGIN),
        height=_r(height),
        blocks=tuple(placed[d.id] for d in drafts),
        edges=edges,
        ops=tuple(ops),
        befores=tuple(befores),
        layers=len(trace.nodes),
    )


def _mark(t: TracedNode, role: str, text: str, x: float, y: float) -> Mark:
    size = size_text(t.out_shape)
    return Mark(
        name=t.node.name,
        type=t.node.type,
        role=role,
        shape=shape_attr(t.out_shape),
        size=size,
        text=text,
        x=_r(x),
        y=_r(y),
        title=f"{t.node.name} ({t.node.type}, line {t.node.line}): {size}; {t.out.formula}".rstrip(
            "; "
        ),
    )


def _edge(a: Block, b: Block, blocks: list[Block], lane: float) -> Edge:
    """An arrow from a block's right side to the next one's left; one that skips columns goes
    over the top of the blocks between, in the lane above them."""
    x1, y1 = a.x + a.w + 4, a.y + a.h / 2
    x2, y2 = b.x - 4, b.y + b.h / 2
    if any(a.x + a.w < c.x and c.x + c.w < b.x for c in blocks):
        return Edge(
            f"M{_r(x1)},{_r(y1)} H{_r(x1 + 10)} V{_r(lane)} H{_r(x2 - 10)} V{_r(y2)} H{_r(x2)}",
            True,
        )
    if abs(y1 - y2) < 0.5:
        return Edge(f"M{_r(x1)},{_r(y1)} H{_r(x2)}", False)
    dx = (x2 - x1) / 2
    return Edge(
        f"M{_r(x1)},{_r(y1)} C{_r(x1 + dx)},{_r(y1)} {_r(x2 - dx)},{_r(y2)} {_r(x2)},{_r(y2)}",
        False,
    )
