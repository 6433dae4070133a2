"""Targets (c): ShapeTrace -> the C target, a folder of plain C99 that needs no allocator.

Takes the trace (and, from a build, the dataset's normalization and labels); returns the files of
`c/` as text: model.h (the API and sizes), model.c (one static function per computing layer, and
the forward function), main.c (an example program) and a Makefile. The weights file
(model_weights.h) is written from trained tensors by export/c_weights.py with `weights_header`;
`lenetc render --target c` has no weights, so model.c compiles only beside a build's weights file.

Layout is this module's job: every layer gets a view of C literals (`CLayer`: the shapes, its keys
per axis, the names of its weight arrays) and the fragment templates/c/layers/<type>.j2 writes its
function (`define`) from it. A fragment may declare `in_place` (it may write its input's buffer)
or `alias` (its output is its input's memory: flatten, dropout), and `layout` (how its weight
arrays are permuted from torch's order, for the vector units). Buffers are given per node by
liveness over the nodes' explicit inputs, so graphs need no change here. No torch import.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..artifacts import write_text
from ..check.shapes import ShapeTrace, TracedNode
from ..errors import Location, Problem, SpecError
from ..layers.base import numel
from ..spec.load import INPUT
from .c_names import LIBC
from .templates import environment, fragment
from .values import identifier
from .walk import derivation_comment

TARGET = "c"
FILES = ("model.h", "model.c", "main.c", "Makefile")
WEIGHTS_FILE = "model_weights.h"
# Names a layer's C function must not take: C99's keywords, what <math.h>, <float.h> and
# <stddef.h> declare (functions in their double, float and long double forms, and macros), and the
# names model.c gives its own things (buffers bufK, the forward function's variables).
_MATH = """acos asin atan atan2 cos sin tan acosh asinh atanh cosh sinh tanh exp exp2 expm1 frexp
    ilogb ldexp log log10 log1p log2 logb modf scalbn scalbln cbrt fabs hypot pow sqrt erf erfc
    lgamma tgamma ceil floor nearbyint rint lrint llrint round lround llround trunc fmod remainder
    remquo copysign nan nextafter nexttoward fdim fmax fmin fma""".split()
C_RESERVED = (
    frozenset(
        """auto break case char const continue default do double else enum extern float for goto if
    inline int long register restrict return short signed sizeof static struct switch typedef
    union unsigned void volatile while _Bool _Complex _Imaginary main input output batch n x y
    i o c g p oc ic ky kx oy ox iy ix m s v w row acc in out NULL offsetof size_t ptrdiff_t
    wchar_t isnan isinf isfinite isnormal signbit fpclassify isgreater isless float_t double_t
    math_errhandling""".split()
        + [f + suffix for f in _MATH for suffix in ("", "f", "l")]
    )
    | LIBC
)  # the rest of the C99 library: gcc and clang know its functions as builtins
_RESERVED_PATTERN = re.compile(r"buf\d+|v\d+|[A-Z][A-Z0-9_]*")  # buffers, block values, macros


@dataclass(frozen=True)
class DatasetInfo:
    """What model.h says about the dataset: per-channel normalization and the class labels."""

    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    labels: tuple[str, ...]
    input_range: tuple[float, float] | None = None  # the raw scale mean and std are in


@dataclass(frozen=True)
class CLayer:
    """What a C fragment sees of one layer: names, C literals, flags; nothing to compute."""

    name: str  # the C function's name (the layer's, unless C reserves it)
    layer: str  # the spec layer's name
    kind: str  # the spec type
    line: int
    comment: str  # the shape after it and its derivation
    v: Mapping[str, str]  # integer and float values as C literals
    f: Mapping[str, bool]  # flags
    p: Mapping[str, str]  # weight arrays by torch parameter name -> C identifier
    block: tuple[tuple[str, str], ...] = ()  # a convolution's outputs per step: (index, offset)
    # A join's operands (add, cat), in `inputs` order: (parameter name, floats it gives per outer
    # step, where they start in the output's step); one entry per input of any other layer.
    operands: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class Step:
    """One statement of the forward function: a call, or a comment for an aliasing layer."""

    layer: CLayer
    call: str
    alias: bool = False


@dataclass
class _Buffers:
    sizes: list[int] = field(default_factory=list)
    free_after: list[int] = field(default_factory=list)  # node index after which it is free


def c_literal(value: float) -> str:
    """A float as a C float literal that reads back the same float32: 0.01 -> 0.01f."""
    text = repr(float(value))
    if "e" not in text and "." not in text:
        text += ".0"
    return text + "f"


def hex_float(value: float) -> str:
    """A float32 value as an exact C99 hex float literal: 0.1f -> 0x1.99999ap-4f."""
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"cannot write {value} as a C literal")
    text = float(value).hex()  # exact: a float32 widened to double loses nothing
    sign = "-" if text.startswith("-") else ""
    mantissa, exponent = text.lstrip("-")[2:].split("p")
    mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
    return f"{sign}0x{mantissa}p{exponent}f"


def c_string(text: str) -> str:
    """A C string literal holding `text` as UTF-8: printable ASCII kept, the rest escaped
    (octal), `?` too (C99 reads `??=` as a trigraph)."""
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\?':
            out.append("\\" + ch)
        elif 32 <= byte < 127:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def prefix(trace: ShapeTrace) -> str:
    """The spec's name, lowercase, prefixing the API: lenet5_forward, LENET5_INPUT_SIZE."""
    return identifier(trace.spec.name).lower()


def render_c(trace: ShapeTrace, data: DatasetInfo | None = None) -> dict[str, str]:
    """The C target's files (without the weights file), by file name."""
    require_static_fits(trace)
    layers = layer_views(trace)
    steps = forward_steps(trace, layers)
    model = model_view(trace, data)
    uses_math = any(getattr(fragment(TARGET, c.kind), "needs_math", False) for c in layers)
    uses_float_h = any(getattr(fragment(TARGET, c.kind), "needs_float_h", False) for c in layers)
    model.update(
        layers=layers,
        steps=steps,
        buffers=_buffer_sizes(trace),
        uses_math=uses_math,
        uses_float_h=uses_float_h,
        defines=[str(fragment(TARGET, c.kind).define(c)) for c in layers if _computes(c.kind)],
        final=final_buffer(trace),
    )
    env = environment()
    files = {name: env.get_template(f"{TARGET}/{name}.j2").render(m=model) for name in FILES}
    for name in ("model.c", "main.c"):
        files[name] = indent_by_braces(files[name])
    return files


def write_c(folder: Path, files: Mapping[str, str]) -> None:
    """Write the C files into `folder`, each atomically; other files there are left alone (a
    build's model_weights.h survives a re-render)."""
    for name, text in files.items():
        write_text(Path(folder) / name, text)


def indent_by_braces(text: str) -> str:
    """Indent C by its braces, four spaces a level (the fragments are written flush left); a
    block comment's inner lines are indented one more space. Strings holding braces are not
    expected here (labels live in model.h)."""
    out, depth, in_comment = [], 0, False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            out.append("")
            continue
        if in_comment:
            out.append(" " * (4 * depth + 1) + line)
            in_comment = "*/" not in line
            continue
        code = re.sub(r"/\*.*?\*/", "", line)
        if "/*" in code:
            in_comment = True
            code = code[: code.index("/*")]
        code = re.sub(r'"(\\.|[^"\\])*"', "", code)
        level = depth - 1 if code.startswith("}") else depth
        out.append(line if line.startswith("#") else " " * (4 * level) + line)
        depth += code.count("{") - code.count("}")
    return "\n".join(out) + "\n"


def model_view(trace: ShapeTrace, data: DatasetInfo | None) -> dict[str, Any]:
    spec = trace.spec
    source = Path(spec.path).name
    shown = source if re.fullmatch(r"[A-Za-z0-9_.\-]{1,62}", source) else "a spec file"
    p = prefix(trace)
    return {
        "title": f"{identifier(spec.class_name)}, generated by lenetc from {shown}",
        "prefix": p,
        "upper": p.upper(),
        "input_shape": ", ".join(str(d) for d in spec.input_shape),
        "output_shape": ", ".join(str(d) for d in trace.output_shape),
        "input_size": str(numel(spec.input_shape)),
        "output_size": str(numel(trace.output_shape)),
        "params": f"{trace.params:,}",
        "weights_file": WEIGHTS_FILE,
        "flops": f"{trace.flops:,}",
        "data": None
        if data is None
        else {
            "name": c_string(data.name)[1:-1].replace("*/", "*\\/"),
            "mean": "{" + ", ".join(c_literal(m) for m in data.mean) + "}",
            "std": "{" + ", ".join(c_literal(s) for s in data.std) + "}",
            "channels": str(len(data.mean)),
            "labels": "{" + ", ".join(c_string(label) for label in data.labels) + "}",
            "range": None if data.input_range is None else [c_literal(v) for v in data.input_range],
        },
    }


# ---- per layer: the C view ----------------------------------------------------------------------


def layer_views(trace: ShapeTrace) -> list[CLayer]:
    taken: set[str] = set(C_RESERVED) | {f"{prefix(trace)}_forward"}  # model.h's function
    arrays = {f"{t.node.name}_{param}" for t in trace.nodes for param in _layout(t.node.type)}
    views = []
    for t in trace.nodes:
        name = identifier(t.node.name)
        if name in taken or name in arrays or _RESERVED_PATTERN.fullmatch(name):
            name = f"{name}_layer"
        taken.add(name)
        v, f = _values(t)
        params = {param: f"{name}_{param}" for param in _layout(t.node.type)}
        comment = derivation_comment([t]).replace("(N, ", "(", 1).replace("*/", "* /")
        block = tuple(
            (str(i), str(i * int(v.get("stride_w", "1")))) for i in range(int(v.get("block", "0")))
        )
        views.append(
            CLayer(
                name,
                t.node.name,
                t.node.type,
                t.node.line,
                comment,
                v,
                f,
                params,
                block,
                _operands(t, v),
            )
        )
    return views


def _operands(t: TracedNode, v: dict[str, str]) -> tuple[tuple[str, str, str], ...]:
    """Per input: its C parameter name (a0, a1, ...), how many floats it gives per step of the
    axes before the joined one (`outer`, also set in v), and where they start in the output's
    step. The joined axis is `dim` (counting the batch, as torch), else the first."""
    shapes = getattr(t, "in_shapes", ()) or (t.in_shape,)
    axis = t.node.args["dim"] % (len(t.in_shape) + 1) - 1 if "dim" in t.node.args else 0
    v.setdefault("outer", str(numel(t.in_shape[:axis])))
    out, start = [], 0
    for k, shape in enumerate(shapes):
        chunk = numel(shape[axis:])
        out.append((f"a{k}", str(chunk), str(start)))
        start += chunk
    v["step"] = str(start)
    return tuple(out)


def weight_arrays(trace: ShapeTrace) -> dict[str, tuple[str, tuple[int, ...], int]]:
    """Per state_dict key of a layer with parameters: its C array name, the permutation of
    torch's axes it is stored in (the fragment's `layout`), and the length its last stored axis
    is padded to with zeros (the fragment's `pad_to_lanes`; 0: none)."""
    out: dict[str, tuple[str, tuple[int, ...], int]] = {}
    for view in layer_views(trace):
        padded = getattr(fragment(TARGET, view.kind), "pad_to_lanes", ()) or ()
        for param, perm in _layout(view.kind).items():
            lanes = int(view.v.get("pad_lanes", "0")) if param in padded else 0
            out[f"{view.layer}.{param}"] = (view.p[param], tuple(perm), lanes)
    return out


def _layout(type_: str) -> dict[str, Sequence[int]]:
    return dict(getattr(fragment(TARGET, type_), "layout", {}) or {})


def _computes(type_: str) -> bool:
    return not getattr(fragment(TARGET, type_), "alias", False)


def _values(t: TracedNode) -> tuple[dict[str, str], dict[str, bool]]:
    """Every number a fragment may need, as C literals, and every flag; computed here, once."""
    v: dict[str, str] = {}
    f: dict[str, bool] = {}
    for side, shape in (("in", t.in_shape), ("out", t.out_shape)):
        v[f"{side}_size"] = str(numel(shape))
        c, h, w = shape if len(shape) == 3 else (shape[0], 1, 1)
        v[f"{side}_c"], v[f"{side}_h"], v[f"{side}_w"] = str(c), str(h), str(w)
        v[f"{side}_plane"] = str(h * w)
    args = dict(t.node.args)
    for key, value in args.items():
        if isinstance(value, bool):
            f[key] = value
        elif isinstance(value, int):
            v[key] = str(value)
        elif isinstance(value, float):
            v[key] = c_literal(value)
        elif isinstance(value, tuple) and len(value) == 2:
            v[f"{key}_h"], v[f"{key}_w"] = str(value[0]), str(value[1])
    for expand in _EXPANDERS:
        expand(t, args, v, f)
    return v, f


def _window(t: TracedNode, a: dict, v: dict, f: dict) -> None:
    """kernel, stride (the kernel when not given), padding (per side), dilation, and whether a
    window can reach outside the input (then the fragment checks bounds)."""
    if "kernel_size" not in a:
        return
    (kh, kw) = a["kernel_size"]
    sh, sw = a.get("stride") or (kh, kw)
    dh, dw = a.get("dilation", (1, 1))
    pad = a.get("padding", (0, 0))
    if pad == "same":  # torch pads the total d*(k-1) with the odd one at the end
        top, left = dh * (kh - 1) // 2, dw * (kw - 1) // 2
        bottom, right = dh * (kh - 1) - top, dw * (kw - 1) - left
    elif pad == "valid":
        top = left = bottom = right = 0
    else:
        top = bottom = pad[0]
        left = right = pad[1]
    c, h, w = t.in_shape
    _, oh, ow = t.out_shape
    v.update(
        stride_h=str(sh),
        stride_w=str(sw),
        dilation_h=str(dh),
        dilation_w=str(dw),
        pad_top=str(top),
        pad_left=str(left),
        padded_h=str(h + top + bottom),
        padded_w=str(w + left + right),
        padded_size=str(c * (h + top + bottom) * (w + left + right)),
        limit_h=str(h + top),  # torch clips a pooling window at the padded edge
        limit_w=str(w + left),
        window=str(kh * kw),
    )
    f["padded"] = bool(top or left or bottom or right)
    # a window reaches past the input: padding, or ceil_mode's last window
    reach_h, reach_w = (oh - 1) * sh + dh * (kh - 1), (ow - 1) * sw + dw * (kw - 1)
    f["clipped"] = f["padded"] or reach_h >= h or reach_w >= w


def _groups(t: TracedNode, a: dict, v: dict, f: dict) -> None:
    """Channels per group, and the layout of a convolution's accumulators: `block` neighbouring
    outputs of a row per step, each with `lanes` channels (its channels, or 8, one vector, when it
    has fewer: their weights are padded with zeros). The block is the largest divisor of the
    output width whose accumulators fit in 14 vector registers and give the loop over channels at
    least 64 statements: with less work gcc unrolls that loop and keeps the accumulators scalar.
    Without such a block: one output per step, no padding."""
    if "groups" not in a:
        return
    g = a["groups"]
    per = t.out_shape[0] // g
    v["in_per_group"] = str(t.in_shape[0] // g)
    v["out_per_group"] = str(per)
    f["grouped"] = g > 1
    lanes = per if per >= 8 or g > 1 else 8
    vectors = -(-lanes // 8)
    width = t.out_shape[2] if len(t.out_shape) == 3 else 1
    fits = [d for d in range(2, 17) if width % d == 0 and d * vectors <= 14 and d * lanes >= 64]
    v["block"] = str(max(fits, default=1))
    v["lanes"] = str(lanes if fits else per)
    f["lane_padded"] = v["lanes"] != str(per) and g == 1
    v["pad_lanes"] = v["lanes"] if f["lane_padded"] else "0"
    v["weight_stride"] = str(t.out_shape[0] if g > 1 else int(v["lanes"]))


def _axis(t: TracedNode, a: dict, v: dict, f: dict) -> None:
    """softmax's dim (counting the batch, as torch) -> outer x n x inner of one sample."""
    if "dim" in a:
        shape = t.in_shape
        axis = a["dim"] % (len(shape) + 1) - 1
        v["outer"] = str(numel(shape[:axis]))
        v["axis_n"] = str(shape[axis])
        v["inner"] = str(numel(shape[axis + 1 :]))


def _approximate(t: TracedNode, a: dict, v: dict, f: dict) -> None:
    if "approximate" in a:
        f["tanh_approximation"] = a["approximate"] == "tanh"


_EXPANDERS = (_window, _groups, _axis, _approximate)


# ---- the forward function: which buffer each node reads and writes ----------------------------


def _inputs(t: TracedNode) -> tuple[str, ...]:
    return t.node.inputs


def _plan(trace: ShapeTrace) -> tuple[dict[str, str], _Buffers]:
    """Where each node's output lives: `x` (the model's input), `y` (the model's output) or a
    static buffer `bufK`. A buffer is reused once every reader of what it holds has run; an
    in-place layer writes its input's buffer when it is that tensor's last reader."""
    nodes = trace.nodes
    last_read: dict[str, int] = {}
    alias: dict[str, str] = {INPUT: INPUT}
    for i, t in enumerate(nodes):
        sources = [alias[s] for s in _inputs(t)]
        for s in sources:
            last_read[s] = i
        alias[t.node.name] = sources[0] if not _computes(t.node.type) else t.node.name
    final = alias[nodes[-1].node.name]
    last_read[final] = len(nodes)
    where: dict[str, str] = {INPUT: "x"}
    bufs = _Buffers()
    for i, t in enumerate(nodes):
        name = t.node.name
        sources = [alias[s] for s in _inputs(t)]
        if not _computes(t.node.type):
            where[name] = where[sources[0]]
            continue
        size = numel(t.out_shape)
        own = where[sources[0]]
        in_place = getattr(fragment(TARGET, t.node.type), "in_place", False)
        if name == final and not in_place:
            where[name] = "y"
            continue
        if in_place and own.startswith("buf") and last_read[sources[0]] == i:
            k = int(own[3:])
        else:
            k = next((j for j, after in enumerate(bufs.free_after) if after < i), len(bufs.sizes))
            if k == len(bufs.sizes):
                bufs.sizes.append(0)
                bufs.free_after.append(0)
        bufs.sizes[k] = max(bufs.sizes[k], size)
        bufs.free_after[k] = last_read.get(name, i)
        where[name] = f"buf{k}"
    where["__final__"] = where[final]
    return where, bufs


# Static data beyond 2 GiB does not link with the default code model (-mcmodel=small: "relocation
# truncated to fit"); the C target keeps its weights and scratch buffers under it.
STATIC_LIMIT = 2**31 - 2**24


def require_static_fits(trace: ShapeTrace) -> None:
    """SpecError (exit 2) when the C target's static arrays would not link, with the numbers."""
    buffers = 4 * sum(_plan(trace)[1].sizes)
    weights = 4 * trace.params
    if buffers + weights <= STATIC_LIMIT:
        return
    big = max(trace.nodes, key=lambda t: numel(t.out_shape))
    gib = 2**30
    raise SpecError(
        Problem(
            f"the C target (c/, written by every build) needs {(buffers + weights) / gib:.1f} GiB "
            f"of static arrays (scratch buffers {buffers / gib:.2f} GiB, weights "
            f"{weights / gib:.2f} GiB), over the {STATIC_LIMIT / gib:.2f} GiB a C program's "
            f"static data can hold; the largest output is {big.node.name} "
            f"{big.out_shape} ({4 * numel(big.out_shape) / gib:.2f} GiB)",
            Location(trace.spec.path, trace.spec.input_line or big.node.line),
            hint="use a smaller input.shape, or reduce the size early (stride, pooling)",
        )
    )


def _buffer_sizes(trace: ShapeTrace) -> list[str]:
    return [str(s) for s in _plan(trace)[1].sizes]


def forward_steps(trace: ShapeTrace, layers: list[CLayer]) -> list[Step]:
    where, _ = _plan(trace)
    steps = []
    for t, view in zip(trace.nodes, layers):
        src = [where[s] for s in _inputs(t)]
        if not _computes(t.node.type):
            steps.append(Step(view, "", alias=True))
        else:
            steps.append(Step(view, f"{view.name}({', '.join(src + [where[t.node.name]])});"))
    return steps


def final_buffer(trace: ShapeTrace) -> str:
    return _plan(trace)[0]["__final__"]


# ---- the weights file ---------------------------------------------------------------------------


def weights_header(
    trace: ShapeTrace, arrays: Mapping[str, tuple[tuple[int, ...], Sequence[float]]]
) -> str:
    """model_weights.h from the trained tensors: state_dict key -> (torch's shape, its values
    already in the stored order and padded, see `weight_arrays`). Each array opens with a comment
    that says where it came from, which `read_weights` reads back."""
    names = weight_arrays(trace)
    blocks = []
    for key, (shape, values) in arrays.items():
        cname, perm, lanes = names[key]
        body = [
            ", ".join(hex_float(x) for x in values[start : start + 4]) + ","
            for start in range(0, len(values), 4)
        ]
        stored = tuple(shape[i] for i in perm)
        if lanes:
            stored = stored[:-1] + (lanes,)
        blocks.append(
            f"/* {key}: torch's shape {_tuple(shape)}, stored as {_tuple(stored)} "
            f"(axes {_tuple(perm)}) */\n"
            f"static const float {cname}[{len(values)}] = {{\n    " + "\n    ".join(body) + "\n};"
        )
    model = model_view(trace, None)
    return environment().get_template(f"{TARGET}/{WEIGHTS_FILE}.j2").render(m=model, blocks=blocks)


_ARRAY = re.compile(
    r"/\* (?P<key>\S+): torch's shape \((?P<shape>[\d, ]*)\), stored as \((?P<stored>[\d, ]*)\) "
    r"\(axes \((?P<perm>[\d, ]*)\)\) \*/\nstatic const float \w+\[\d+\] = \{(?P<body>[^}]*)\};"
)


def read_weights(text: str) -> dict[str, tuple[tuple[int, ...], ...]]:
    """model_weights.h back to state_dict key -> (torch's shape, the stored axes, the stored
    shape, the values)."""
    out = {}
    for m in _ARRAY.finditer(text):
        shape, perm, stored = (
            tuple(int(d) for d in m[k].replace(" ", "").split(",") if d)
            for k in ("shape", "perm", "stored")
        )
        values = tuple(float.fromhex(t.strip()[:-1]) for t in m["body"].split(",") if t.strip())
        out[m["key"]] = (shape, perm, stored, values)
    return out


def _tuple(values: Sequence[int]) -> str:
    return "(" + ", ".join(str(v) for v in values) + ("," if len(values) == 1 else "") + ")"
