"""Stage 1, load: a spec file -> Spec, the typed IR every later stage reads.

Takes a path to YAML; returns a frozen Spec whose layers are Nodes with explicit inputs: a layer
reads the layers named in its `inputs:` (earlier layers, auto names included, or `input`), or else
the layer before it, so a chain spec is a graph whose every node reads its predecessor. The list is
in topological order and the output is the last layer. Raises SpecError listing every problem
found: unknown types and keys (with the nearest known one), wrong types and ranges, unsafe names,
references to unknown or later layers, layers whose output nothing reads. Shapes are not checked
here (check/shapes.py does). No torch import.
"""

from __future__ import annotations

import hashlib
import keyword
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..layers import REGISTRY
from .config import (
    ExportConfig,
    QuantizeConfig,
    TargetConfig,
    TrainConfig,
    VerifyConfig,
    read_export,
    read_quantize,
    read_target,
    read_train,
    read_verify,
)
from .fields import FieldError, Reporter, Section, describe, integer, nearest, text
from .graph import INPUT, check_every_output_is_read, read_inputs, splice_blocks
from .yamlsafe import YList, YMap, line_of, load_yaml

_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}\Z")
MAX_LAYERS = 1000
# Attribute names an nn.Module already has (public ones; leading underscores are refused anyway).
# A layer named `forward` or `training` would break the generated class. tests/test_spec.py checks
# this list against dir(torch.nn.Module), so a new torch cannot slip one past us.
MODULE_ATTRIBUTES = frozenset(
    """T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda
    double dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter
    get_submodule half ipu load_state_dict modules mtia named_buffers named_children named_modules
    named_parameters parameters register_backward_hook register_buffer register_forward_hook
    register_forward_pre_hook register_full_backward_hook register_full_backward_pre_hook
    register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module
    register_parameter register_state_dict_post_hook register_state_dict_pre_hook requires_grad_
    set_extra_state set_submodule share_memory state_dict to to_empty train training type xpu
    zero_grad""".split()
)
# Names the generated module file uses itself; a class or layer must not shadow them.
SOURCE_NAMES = frozenset({"torch", "nn", "F", "x", "self", "super", "Tensor", INPUT})


@dataclass(frozen=True)
class Node:
    """One layer of the network: a registered kind, its parsed keys, and where it came from."""

    name: str
    type: str
    args: Mapping[str, Any]
    inputs: tuple[str, ...]
    line: int
    key_lines: Mapping[str, int]
    auto_named: bool

    @property
    def label(self) -> str:
        return f"{self.name} ({self.type})"


@dataclass(frozen=True)
class Spec:
    name: str
    class_name: str
    input_shape: tuple[int, ...]
    nodes: tuple[Node, ...]
    train: TrainConfig
    export: ExportConfig
    verify: VerifyConfig
    path: str  # as the user gave it, for messages
    source_dir: Path  # dataset paths are relative to it
    sha256: str  # of the spec file's bytes
    input_line: int = 0
    target: TargetConfig = TargetConfig()  # the memory budget of a microcontroller, if stated
    quantize: QuantizeConfig | None = None  # the quantize: section, or --int8; None: float only

    @property
    def output(self) -> str:
        return self.nodes[-1].name


def load_spec(path: Path | str, display: str | None = None) -> Spec:
    path = Path(path)
    name = display or str(path)
    data = load_yaml(path, name)
    raw = path.read_bytes()
    return parse_spec(data, name, path.resolve().parent, hashlib.sha256(raw).hexdigest())


def parse_spec(data: YMap, file: str, source_dir: Path, sha256: str = "") -> Spec:
    report = Reporter(file)
    top = Section(
        data,
        [
            "name",
            "class_name",
            "input",
            "layers",
            "train",
            "export",
            "verify",
            "target",
            "quantize",
            "blocks",
        ],
        report,
        where="the spec",
        line=data.line,
    )
    name = top.get("name", text(64))
    if name is not None and not _check_identifier(
        name, "name", top, top.line("name"), source=False
    ):
        name = None
    if name is not None and name.lower() in MAKE_CLASHES:
        top.fail(
            f"name '{name}' {MAKE_CLASHES[name.lower()]}",
            top.line("name"),
            hint=f"rename it, e.g. '{name}_net'",
        )
        name = None
    class_name = top.get("class_name", text(64), None)
    if class_name is None and name is not None:
        class_name = camel_case(name)
    if class_name is not None:
        _check_identifier(class_name, "class_name", top, top.line("class_name") or top.line("name"))
    inp = Section(top.raw("input"), ["shape"], report, where="input", line=top.line("input"))
    shape = inp.get("shape", _input_shape)
    nodes = _read_layers(top, report)
    train = read_train(top.raw("train"), report, top.line("train"))
    export = read_export(top.raw("export"), report, top.line("export"))
    verify = read_verify(top.raw("verify"), report, top.line("verify"))
    target = read_target(top.raw("target"), report, top.line("target"))
    quantize = read_quantize(top.raw("quantize"), report, top.line("quantize"))
    _check_loss(nodes, train, report)
    if report.problems:
        raise SpecError(sorted(report.problems, key=lambda p: p.at.line))
    return Spec(
        name=name,
        class_name=class_name,
        input_shape=shape,
        nodes=tuple(nodes),
        train=train,
        export=export,
        verify=verify,
        path=file,
        source_dir=source_dir,
        sha256=sha256,
        input_line=inp.line("shape"),
        target=target,
        quantize=quantize,
    )


# The C target's Makefile (templates/c/Makefile.j2) names its program after the spec (lowercase):
# a name equal to another of its targets merges the two rules, and a program called makefile
# would be read by the next `make` as its makefile.
MAKE_CLASHES = {
    "clean": "is a target of the C target's Makefile (`make clean`): a plain `make` would run "
    "its recipe (rm) instead of building ./clean",
    **{
        f: f"would name the C target's program ./{f}, which the next `make` would read as its "
        "makefile"
        for f in ("makefile", "gnumakefile")
    },
}


def _check_loss(nodes: list[Node], train: TrainConfig, report: Reporter) -> None:
    """nll reads log-probabilities; on raw scores it falls without bound and learns nothing."""
    if nodes and train.loss == "nll" and nodes[-1].type != "log_softmax":
        last = nodes[-1]
        report.add(
            f"loss nll expects log-probabilities, but the last layer is {last.type}",
            last.line,
            layer=last.label,
            hint="end the layers with {type: log_softmax}, or use loss: cross_entropy",
        )


def camel_case(name: str) -> str:
    """lenet5 -> Lenet5, tiny_vgg -> TinyVgg: the generated class's default name."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def _input_shape(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) not in (1, 3):
        raise FieldError(
            f"expected [channels, height, width] or [features], found {describe(value)}",
            hint="the batch dimension is implicit: an image is [1, 32, 32], an MLP input [64]",
        )
    size = integer(1, 1 << 16, "a positive size")
    if len(value) == 1:
        return (integer(1, 1 << 24, "a positive number of features")(value[0]),)
    return tuple(size(v) for v in value)


def _check_identifier(value: str, key: str, where: Section, line: int, source: bool = True) -> bool:
    problem = identifier_problem(value, source)
    if problem:
        where.fail(f"{key} '{value}' {problem[0]}", line, hint=problem[1])
        return False
    return True


_PLAIN_HINT = "use ASCII letters, digits and underscores, starting with a letter"


def identifier_problem(value: str, source: bool = True) -> tuple[str, str] | None:
    """Why `value` cannot name a layer or class in generated code, and a way out; None if it can.

    source=False for the spec's name, which names a folder and (camel-cased) the class only.
    """
    if not value.isascii():
        bad = next(c for c in value if not c.isascii())
        return (
            f"has the non-ASCII character '{bad}' (U+{ord(bad):04X}); look-alike letters are "
            "refused",
            _PLAIN_HINT,
        )
    if value.startswith("_"):
        return "starts with an underscore (private and dunder names are Python's own)", _PLAIN_HINT
    if not _IDENT.match(value):
        return (
            "is not a plain identifier (letters, digits, underscores; a letter first; 64 at most)",
            _PLAIN_HINT,
        )
    if keyword.iskeyword(value) or keyword.issoftkeyword(value):
        return "is a Python keyword", f"rename it, e.g. '{value}_1'"
    if source and value in SOURCE_NAMES:
        return "would shadow a name the generated source uses", f"rename it, e.g. '{value}_1'"
    return None


def layer_name_problem(value: str) -> tuple[str, str] | None:
    """identifier_problem, plus the attributes every nn.Module has (a layer becomes one)."""
    problem = identifier_problem(value)
    if problem is None and value in MODULE_ATTRIBUTES:
        problem = (
            "would shadow an attribute every torch nn.Module has",
            f"rename it, e.g. '{value}_layer'",
        )
    return problem


@dataclass
class _Item:
    """One layer entry between the passes of _read_layers: its kind, name and YAML."""

    index: int
    kind_name: str
    given: str | None
    line: int
    data: YMap
    name: str = ""


def _read_layers(top: Section, report: Reporter) -> list[Node]:
    """Two passes: name every layer first (so every problem names its layer), then parse keys."""
    raw = top.raw("layers")
    line = top.line("layers")
    if "layers" not in top.data:
        top.fail(
            "the spec needs 'layers', a list of layers", top.line(), hint="see specs/lenet5.yaml"
        )
        return []
    if not isinstance(raw, YList) or not raw:
        top.fail(
            f"layers must be a non-empty list of {{type: ...}} mappings, found {describe(raw)}",
            line,
        )
        return []
    raw = splice_blocks(raw, MAX_LAYERS)
    if len(raw) > MAX_LAYERS:
        top.fail(f"the spec has {len(raw)} layers; lenetc takes at most {MAX_LAYERS}", line)
        return []
    items = [item for i, entry in enumerate(raw) if (item := _item(top, raw, i, entry))]
    ok = _name_items(items, top)
    nodes: list[Node] = []
    order = [(item.name, item.line) for item in items]  # every layer's name and line, in order
    position = {item.name: i for i, item in enumerate(items)}
    for item in items:
        kind = REGISTRY[item.kind_name]
        s = Section(
            item.data,
            ("type", "name", "inputs") + kind.keys,
            report,
            where=f"layer {item.kind_name}",
            line=item.line,
            layer=f"{item.name} ({item.kind_name})",
        )
        args = {p.name: s.get(p.name, p.parse, p.default) for p in kind.params}
        inputs = (
            read_inputs(item.kind_name, s, item.name, item.line, order, position) if ok else None
        )
        if s.ok and ok and inputs is not None:
            nodes.append(
                Node(
                    name=item.name,
                    type=item.kind_name,
                    args=args,
                    inputs=inputs,
                    line=item.line,
                    key_lines=dict(item.data.key_lines),
                    auto_named=item.given is None,
                )
            )
    if ok and len(nodes) == len(raw):
        check_every_output_is_read(nodes, report)
    return nodes


def _item(top: Section, raw: YList, i: int, entry: Any) -> _Item | None:
    """Check that one entry of layers: is a mapping with a known type; record why not."""
    line = line_of(raw, i)
    if not isinstance(entry, YMap):
        top.fail(
            f"layer {i + 1} must be a mapping like {{type: relu}}, found {describe(entry)}", line
        )
        return None
    kind_name = entry.get("type")
    if not isinstance(kind_name, str):
        found = "no type" if "type" not in entry else f"type {describe(kind_name)}"
        top.fail(
            f"layer {i + 1} needs a 'type' naming its kind, found {found}",
            line_of(entry, "type", line),
            hint="one of: " + ", ".join(sorted(REGISTRY)),
        )
        return None
    if kind_name not in REGISTRY:
        near = nearest(kind_name, REGISTRY)
        top.fail(
            f"layer {i + 1}: unknown layer type '{kind_name}'",
            line_of(entry, "type", line),
            hint=f"did you mean '{near}'?"
            if near
            else "known types: " + ", ".join(sorted(REGISTRY)),
        )
        return None
    given = entry.get("name")
    return _Item(i, kind_name, given if isinstance(given, str) else None, line, entry)


def _name_items(items: list[_Item], top: Section) -> bool:
    """Name every layer: given (checked: safe, unique) or prefix + count (conv1, fc2)."""
    ok = True
    taken: dict[str, int] = {}
    for item in items:
        if "name" in item.data and item.given is None:
            top.fail(
                f"layer {item.index + 1} ({item.kind_name}): name must be text, found "
                f"{describe(item.data['name'])}",
                line_of(item.data, "name"),
            )
            ok = False
        if item.given is None:
            continue
        problem = layer_name_problem(item.given)
        if problem:
            top.report.add(
                f"name '{item.given}' {problem[0]}",
                line_of(item.data, "name"),
                layer=f"{item.given} ({item.kind_name})",
                hint=problem[1],
            )
            ok = False
        if item.given in taken:
            top.fail(
                f"two layers are named '{item.given}' (lines {taken[item.given]} and {item.line})",
                line_of(item.data, "name"),
                hint="layer names become attributes of the module and must be unique",
            )
            ok = False
        taken.setdefault(item.given, item.line)
    counters: dict[str, int] = {}
    for item in items:
        if item.given is not None:
            item.name = item.given
            continue
        prefix = REGISTRY[item.kind_name].prefix
        while True:  # skip numbers the user took: `conv2` given by hand
            counters[prefix] = counters.get(prefix, 0) + 1
            item.name = f"{prefix}{counters[prefix]}"
            if item.name not in taken:
                break
        taken[item.name] = item.line
    return ok


__all__ = ["INPUT", "Node", "Spec", "load_spec", "parse_spec"]
