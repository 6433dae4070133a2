"""Stage 0 of load: read a YAML file safely, keeping the line of every key and item.

Takes a path; returns a YMap (a dict that knows the line of each of its keys). Nothing in the file
can run code: we compose the node tree with PyYAML's safe composer and build plain values ourselves,
rejecting custom tags, duplicate keys, deep nesting, huge files and non-UTF-8 bytes. Anchors and
aliases (`&block` ... `*block`) and merge keys (`<<: *block`) are accepted, so a block is written
once and reused; everything an alias expands to carries the line where the alias is used, so an
error inside a reused block points at the use. An expansion budget refuses alias bombs ("billion
laughs") before they grow. NaN and infinity pass through as floats: the field that reads them
says which key holds them (fields.py). Raises SpecError with the file and line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..errors import Location, Problem, SpecError

MAX_SPEC_BYTES = 256 * 1024  # a spec is a page of YAML; anything this big is not one
MAX_DEPTH = 16  # specs nest four levels deep; a deeper document is malformed or hostile
MAX_NODES = 50_000
# Values that aliases may add by expansion. Reusing a block of layers ten times adds a few hundred;
# a "billion laughs" bomb multiplies by ten per level and passes this within four levels.
MAX_ALIAS_VALUES = 4_000
# What PyYAML's reader refuses (with a multi-line message and no line): C0 controls but tab,
# newline and carriage return; DEL and C1 controls but NEL; surrogates; U+FFFE / U+FFFF.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")

_PLAIN_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}


_RESOLVER = yaml.resolver.Resolver()  # implicit types of plain scalars, as SafeLoader reads them


class YMap(dict):
    """A mapping from YAML with the line of the mapping and of each key (1-based)."""

    line: int
    key_lines: dict[str, int]


class YList(list):
    """A sequence from YAML with the line of the sequence and of each item (1-based)."""

    line: int
    item_lines: list[int]


def line_of(container: Any, key: Any = None, default: int = 0) -> int:
    """The line of `container[key]`, or of the container itself when key is None."""
    if key is None:
        return getattr(container, "line", default)
    if isinstance(container, YMap):
        return container.key_lines.get(key, container.line)
    if isinstance(container, YList) and isinstance(key, int) and 0 <= key < len(container):
        return container.item_lines[key]
    return default


def load_yaml(path: Path, display: str | None = None) -> YMap:
    """Load a spec file into a YMap; raise SpecError with a located cause on any bad input."""
    name = display or str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SpecError(
            Problem(f"cannot read the spec: {exc.strerror or exc}", Location(name))
        ) from None
    if not path.is_file():
        raise SpecError(Problem("the spec path is not a file", Location(name)))
    if size > MAX_SPEC_BYTES:
        raise SpecError(
            Problem(
                f"the file is {size:,} bytes, more than a spec can be ({MAX_SPEC_BYTES:,} bytes)",
                Location(name),
                hint="point lenetc at the YAML spec, not at a data file",
            )
        )
    raw = path.read_bytes()
    return load_yaml_text(raw, name)


def load_yaml_text(raw: bytes, name: str) -> YMap:
    """Parse spec bytes (see load_yaml)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(
            Problem(
                f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
                Location(name, line),
                hint="save the spec as UTF-8",
            )
        ) from None
    bad = _CONTROL.search(text)
    if bad:
        raise SpecError(
            Problem(
                f"the file holds the control character U+{ord(bad.group()):04X}, which YAML "
                "does not allow",
                Location(name, text.count("\n", 0, bad.start()) + 1),
                hint="a spec is plain text; was a binary file given?",
            )
        )
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        what = exc.problem or "malformed YAML"
        raise SpecError(Problem(f"YAML syntax: {what}", Location(name, line))) from None
    except yaml.YAMLError as exc:
        raise SpecError(Problem(f"YAML syntax: {exc}", Location(name))) from None
    except RecursionError:
        raise SpecError(
            Problem("the YAML is nested too deeply to be a spec", Location(name))
        ) from None
    if node is None:
        raise SpecError(
            Problem("the spec is empty", Location(name, 1), hint="see specs/lenet5.yaml")
        )
    builder = _Builder(name)
    value = builder.build(node, depth=0)
    if not isinstance(value, YMap):
        raise SpecError(
            Problem(
                "the spec must be a mapping (name:, input:, layers: ...), found a " + _kind(value),
                Location(name, node.start_mark.line + 1),
                hint="see specs/lenet5.yaml for the layout",
            )
        )
    return value


def _explicit_tag(node: ScalarNode) -> bool:
    """Whether the tag was written (`!!str`, `!foo`) rather than resolved from a plain value."""
    return _RESOLVER.resolve(ScalarNode, node.value, (True, False)) != node.tag


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if value is None:
        return "null"
    return type(value).__name__


class _AliasUse:
    """An alias (`*block`) where it is used: the anchored node, and the mark of this use."""

    def __init__(self, node: Node, mark: yaml.Mark) -> None:
        self.node = node
        self.start_mark = mark


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, except that an alias composes to an _AliasUse that remembers where it
    is used (PyYAML hands back the anchored node itself, and the line of the use is lost)."""

    def compose_node(self, parent: Node | None, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.get_event()
            if event.anchor not in self.anchors:
                raise yaml.composer.ComposerError(
                    None, None, f"found undefined alias *{event.anchor}", event.start_mark
                )
            return _AliasUse(self.anchors[event.anchor], event.start_mark)
        return super().compose_node(parent, index)


class _Builder:
    """Turns composed YAML nodes into YMap / YList / plain scalars, refusing anything unsafe."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.expanded = 0  # values built through an alias
        self.open: list[int] = []  # ids of the nodes being built, outermost first
        self.scalars = SafeConstructor()

    def fail(
        self, node: Any, message: str, hint: str | None = None, at: int | None = None
    ) -> SpecError:
        line = at if at is not None else node.start_mark.line + 1
        return SpecError(Problem(message, Location(self.name, line), hint=hint))

    def build(self, node: Any, depth: int, at: int | None = None) -> Any:
        """The value of a node; `at`, inside an alias, is the line of the alias's use."""
        if depth > MAX_DEPTH:
            raise self.fail(node, f"the YAML nests deeper than {MAX_DEPTH} levels", at=at)
        if isinstance(node, _AliasUse):
            if id(node.node) in self.open:
                raise self.fail(
                    node,
                    "this YAML alias refers to the block that contains it (it would never end)",
                    hint="an alias can only reuse a block that is complete above it",
                    at=at,
                )
            return self.build(node.node, depth, node.start_mark.line + 1 if at is None else at)
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(
                node, f"the YAML has more than {MAX_NODES:,} values, too many for a spec", at=at
            )
        if at is not None:
            self.expanded += 1
            if self.expanded > MAX_ALIAS_VALUES:
                raise self.fail(
                    node,
                    f"YAML aliases expand to more than {MAX_ALIAS_VALUES:,} values, far more than "
                    "a spec reuses: this looks like an alias bomb (billion laughs)",
                    hint="reuse a block a few times, not blocks of blocks of blocks",
                    at=at,
                )
        self.open.append(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, depth, at)
            if isinstance(node, SequenceNode):
                if node.tag != "tag:yaml.org,2002:seq":
                    raise self._bad_tag(node, at)
                out = YList()
                out.line = _line(node, at)
                out.item_lines = []
                for item in node.value:
                    out.append(self.build(item, depth + 1, at))
                    out.item_lines.append(_line(item, at))
                return out
            assert isinstance(node, ScalarNode)
            return self._scalar(node, at)
        finally:
            self.open.pop()

    def _mapping(self, node: MappingNode, depth: int, at: int | None) -> YMap:
        if node.tag != "tag:yaml.org,2002:map":
            raise self._bad_tag(node, at)
        out = YMap()
        out.line = _line(node, at)
        out.key_lines = {}
        merged: list[tuple[YMap, int]] = []
        for key_node, value_node in node.value:
            if getattr(key_node, "tag", None) == "tag:yaml.org,2002:merge":
                merged.extend(self._merge(key_node, value_node, depth, at))
                continue
            key = self.build(key_node, depth + 1, at)
            if not isinstance(key, str):
                raise self.fail(key_node, f"keys must be text, found {_kind(key)} {key!r}", at=at)
            if key in out:
                raise self.fail(
                    key_node,
                    f"duplicate key '{key}' (first on line {out.key_lines[key]})",
                    hint="keep one of them",
                    at=at,
                )
            out[key] = self.build(value_node, depth + 1, at)
            out.key_lines[key] = _line(key_node, at)
        for block, line in merged:  # keys written out win over merged ones, as YAML says
            for key, value in block.items():
                if key not in out:
                    out[key] = value
                    out.key_lines[key] = line
        return out

    def _merge(self, key_node: Node, value_node: Any, depth: int, at: int | None):
        """`<<: *block` or `<<: [*a, *b]`: the mappings to merge, each with the line of the use."""
        line = _line(key_node, at)
        value = self.build(value_node, depth + 1, at)
        blocks = value if isinstance(value, YList) else [value]
        if not blocks or not all(isinstance(b, YMap) for b in blocks):
            raise self.fail(
                key_node,
                "a YAML merge key (<<) takes a mapping or a list of mappings",
                hint="e.g. {<<: *conv3x3, out_channels: 64}",
                at=at,
            )
        return [(b, line) for b in blocks]

    def _scalar(self, node: ScalarNode, at: int | None) -> Any:
        if node.tag not in _PLAIN_TAGS:
            raise self._bad_tag(node, at)
        try:
            value = self.scalars.construct_object(node)
        except (yaml.YAMLError, ValueError) as exc:
            raise self.fail(node, f"cannot read the value {node.value!r}: {exc}", at=at) from None
        return value

    def _bad_tag(self, node: Node, at: int | None) -> SpecError:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        if isinstance(node, ScalarNode) and node.style is None and not _explicit_tag(node):
            # an implicit type such as a date (2024-01-01) or binary: say what was written
            return self.fail(
                node,
                f"'{node.value}' reads as a YAML {tag[2:]}, which a spec never holds",
                hint="quote it to make it text",
                at=at,
            )
        return self.fail(
            node,
            f"YAML tag {tag} is not allowed in a spec (only plain values, lists and mappings)",
            hint="remove the tag; a spec never needs one",
            at=at,
        )


def _line(node: Any, at: int | None) -> int:
    return at if at is not None else node.start_mark.line + 1
