"""Stage 0 of load: read a YAML file safely, keeping the line of every key and item.

Takes a path; returns a YMap (a dict that knows the line of each of its keys). Nothing in the file
can run code: we compose the node tree with PyYAML's safe composer and build plain values ourselves,
rejecting custom tags, aliases (so no alias bombs), duplicate keys, deep nesting, huge files,
non-UTF-8 bytes and NaN/inf. Raises SpecError with the file and line.
"""

from __future__ import annotations

import math
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
        node = yaml.compose(text, Loader=yaml.SafeLoader)
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


class _Builder:
    """Turns composed YAML nodes into YMap / YList / plain scalars, refusing anything unsafe."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: set[int] = set()
        self.count = 0
        self.scalars = SafeConstructor()

    def fail(self, node: Node, message: str, hint: str | None = None) -> SpecError:
        return SpecError(Problem(message, Location(self.name, node.start_mark.line + 1), hint=hint))

    def build(self, node: Node, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail(node, f"the YAML nests deeper than {MAX_DEPTH} levels")
        # The composer hands back the very same node object for every alias of an anchor;
        # seeing a node twice means an alias, and aliases are how YAML "billion laughs" bombs work.
        if id(node) in self.seen:
            raise self.fail(
                node,
                "YAML aliases (*name) are not allowed in a spec",
                hint="write the value out where it is used",
            )
        self.seen.add(id(node))
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(
                node, f"the YAML has more than {MAX_NODES:,} values, too many for a spec"
            )
        if isinstance(node, MappingNode):
            return self._mapping(node, depth)
        if isinstance(node, SequenceNode):
            if node.tag != "tag:yaml.org,2002:seq":
                raise self._bad_tag(node)
            out = YList()
            out.line = node.start_mark.line + 1
            out.item_lines = []
            for item in node.value:
                out.append(self.build(item, depth + 1))
                out.item_lines.append(item.start_mark.line + 1)
            return out
        assert isinstance(node, ScalarNode)
        return self._scalar(node)

    def _mapping(self, node: MappingNode, depth: int) -> YMap:
        if node.tag != "tag:yaml.org,2002:map":
            raise self._bad_tag(node)
        out = YMap()
        out.line = node.start_mark.line + 1
        out.key_lines = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise self.fail(key_node, "YAML merge keys (<<) are not allowed in a spec")
            key = self.build(key_node, depth + 1)
            if not isinstance(key, str):
                raise self.fail(key_node, f"keys must be text, found {_kind(key)} {key!r}")
            if key in out:
                raise self.fail(
                    key_node,
                    f"duplicate key '{key}' (first on line {out.key_lines[key]})",
                    hint="keep one of them",
                )
            out[key] = self.build(value_node, depth + 1)
            out.key_lines[key] = key_node.start_mark.line + 1
        return out

    def _scalar(self, node: ScalarNode) -> Any:
        if node.tag not in _PLAIN_TAGS:
            raise self._bad_tag(node)
        try:
            value = self.scalars.construct_object(node)
        except (yaml.YAMLError, ValueError) as exc:
            raise self.fail(node, f"cannot read the value {node.value!r}: {exc}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(
                node,
                f"expected a finite number, found {node.value}",
                hint="NaN and infinity are refused everywhere in a spec",
            )
        return value

    def _bad_tag(self, node: Node) -> SpecError:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        if isinstance(node, ScalarNode) and node.style is None and not _explicit_tag(node):
            # an implicit type such as a date (2024-01-01) or binary: say what was written
            return self.fail(
                node,
                f"'{node.value}' reads as a YAML {tag[2:]}, which a spec never holds",
                hint="quote it to make it text",
            )
        return self.fail(
            node,
            f"YAML tag {tag} is not allowed in a spec (only plain values, lists and mappings)",
            hint="remove the tag; a spec never needs one",
        )
