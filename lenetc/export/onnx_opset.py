"""Stage 5, export: an opset-18 ONNX model -> the same model at an older opset (13 to 17).

Takes the ModelProto the exporter wrote (opset 18, the lowest torch 2.13 writes itself) and a
target opset; returns the converted ModelProto, or raises OpsetRefused naming the first operator
the target opset cannot express. The conversion is onnx.version_converter's; parity (verify) then
proves the converted file like every other.

onnx.version_converter has no down-conversion adapter for some operators whose newer version only
widened what they accept: Relu-14 (integer types added), Reshape-14 (the `allowzero` attribute,
default 0). When the model uses such an operator within what the target's version accepts (the
same inputs, outputs and attributes, tensor types the older version allows), its nodes are carried
over unchanged: they are hidden from the converter in a private domain and put back after. Any
other missing adapter, and an operator that does not exist at the target opset, is refused.
No torch import.
"""

from __future__ import annotations

import re

CARRY_DOMAIN = "lenetc.carry"  # never in a written file: nodes hidden from the converter
NO_ADAPTER = re.compile(r"No Adapter (?:From|To) Version \$(\d+) for (\w+)")
NO_PREVIOUS = re.compile(r"No Previous Version of (\w+) exists")


def _shape_has_no_zero(model, node) -> bool:
    """Reshape's allowzero only matters for a 0 in the shape: moot for a constant without one."""
    from onnx import numpy_helper

    constants = {t.name: t for t in model.graph.initializer}
    shape = constants.get(node.input[1]) if len(node.input) > 1 else None
    return shape is not None and bool((numpy_helper.to_array(shape) != 0).all())


# (operator, attribute) the older version lacks, and when this node's value of it changes nothing.
MOOT = {("Reshape", "allowzero"): _shape_has_no_zero}


class OpsetRefused(Exception):
    """The target opset cannot express an operator of the model: `op`, `node`, and why."""

    def __init__(self, op: str, node: str, why: str) -> None:
        super().__init__(f"operator {op} (node {node}): {why}" if op else why)
        self.op, self.node, self.why = op, node, why


def convert(model, target: int):
    """`model` (a ModelProto at a newer default-domain opset) converted to opset `target`."""
    from onnx import version_converter

    carried: set[str] = set()
    while True:
        hidden = _hide(model, carried)
        try:
            out = version_converter.convert_version(hidden, target)
        except Exception as exc:  # the C++ converter raises RuntimeError or ValueError
            found = NO_ADAPTER.search(str(exc)) or NO_PREVIOUS.search(str(exc))
            if found is None:
                raise OpsetRefused("", "", _first_line(exc)) from exc
            op = found.groups()[-1]
            if op in carried:  # hiding it did not help: do not loop
                raise OpsetRefused(op, _node_of(model, op), _first_line(exc)) from exc
            why = carry_problem(model, op, target)
            if why is not None:
                raise OpsetRefused(op, _node_of(model, op), why) from exc
            carried.add(op)
            continue
        return _restore(out, target, _opset(model))


def carry_problem(model, op: str, target: int) -> str | None:
    """Why the nodes of `op` cannot stay as they are at opset `target` (None: they can)."""
    from onnx import defs, shape_inference

    source = _opset(model)
    try:
        new = defs.get_schema(op, source)
    except Exception:
        return f"not an operator of opset {source}"
    try:
        old = defs.get_schema(op, target)
    except Exception:
        return f"opset {target} has no {op} (it first appears in opset {new.since_version})"
    if old.since_version == new.since_version:
        return None
    nodes = [n for n in model.graph.node if n.op_type == op and n.domain in ("", "ai.onnx")]
    if len(old.inputs) != len(new.inputs) or any(
        len([o for o in n.output if o]) > len(old.outputs) for n in nodes
    ):
        return (
            f"its inputs or outputs changed between {op}-{old.since_version} and "
            f"{op}-{new.since_version}, and onnx.version_converter has no adapter"
        )
    typed = shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in typed.graph.value_info}
    types.update({v.name: v.type.tensor_type.elem_type for v in typed.graph.input})
    types.update({v.name: v.type.tensor_type.elem_type for v in typed.graph.output})
    types.update({t.name: t.data_type for t in typed.graph.initializer})
    allowed = {c.type_param_str: set(c.allowed_type_strs) for c in old.type_constraints}
    for node in nodes:
        for attr in node.attribute:
            if attr.name in old.attributes or _is_default(attr, new):
                continue
            if (op, attr.name) not in MOOT or not MOOT[op, attr.name](model, node):
                return (
                    f"node {node.name} sets {attr.name}, which {op}-{old.since_version} "
                    f"(opset {target}) does not have"
                )
        formals = [(i.type_str, n) for i, n in zip(old.inputs, node.input)]
        formals += [(o.type_str, n) for o, n in zip(old.outputs, node.output)]
        for type_str, name in formals:
            if not name or type_str not in allowed or name not in types:
                continue
            found = f"tensor({_type_name(types[name])})"
            if found not in allowed[type_str]:
                return f"{op}-{old.since_version} (opset {target}) does not accept {found}"
    return None


def _is_default(attr, schema) -> bool:
    """The attribute holds its schema's default (Reshape's allowzero = 0): dropping it is exact."""
    from onnx import helper

    formal = schema.attributes.get(attr.name)
    if formal is None or not formal.default_value.name:
        return False
    return helper.get_attribute_value(attr) == helper.get_attribute_value(formal.default_value)


def _hide(model, carried: set[str]):
    import onnx
    from onnx import helper

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    if carried:
        for node in copy.graph.node:
            if node.op_type in carried and node.domain in ("", "ai.onnx"):
                node.domain = CARRY_DOMAIN
        copy.opset_import.append(helper.make_opsetid(CARRY_DOMAIN, 1))
    return copy


def _restore(model, target: int, source: int):
    """Carried nodes back in the default domain; then, on every node, the attributes its version
    at `target` lacks dropped where they hold their newer default (carry_problem checked the
    carried ones; the converter's own adapters leave some, such as ReduceMean-18's
    noop_with_empty_axes on ReduceMean-13), refused otherwise."""
    from onnx import defs

    for node in model.graph.node:
        if node.domain == CARRY_DOMAIN:
            node.domain = ""
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        known = defs.get_schema(node.op_type, target).attributes
        extra = [a for a in node.attribute if a.name not in known]
        for attr in extra:
            newer = defs.get_schema(node.op_type, source)
            if not _is_default(attr, newer) and not (
                (node.op_type, attr.name) in MOOT and MOOT[node.op_type, attr.name](model, node)
            ):
                raise OpsetRefused(
                    node.op_type,
                    node.name,
                    f"sets {attr.name}, which {node.op_type} at opset {target} does not have",
                )
        if extra:
            kept = [a for a in node.attribute if a.name in known]
            del node.attribute[:]
            node.attribute.extend(kept)
    kept = [o for o in model.opset_import if o.domain != CARRY_DOMAIN]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    return model


def _opset(model) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _node_of(model, op: str) -> str:
    return next((n.name for n in model.graph.node if n.op_type == op), "?")


def _type_name(elem_type: int) -> str:
    from onnx import TensorProto

    return TensorProto.DataType.Name(elem_type).lower()


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
