"""Stage 2, check: Spec -> ShapeTrace, every shape derived statically and explained.

Walks the nodes in order (each reads the outputs of its `inputs`: one, or several for a join such
as add and cat), applying each kind's shape rule from the registry. Returns per node: input and
output shapes (batch omitted), the arithmetic as text, parameters and FLOPs. Raises SpecError at
the first layer whose input does not fit (later shapes are unknown then), located at the YAML line
of the key at fault. Any size is reported exactly: check allocates nothing, so it has no budget
(build applies the memory budget, check/memory.py). No torch import.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import Location, Problem, SpecError
from ..layers import REGISTRY, Inferred, LayerInput, ShapeProblem
from ..layers.base import Shape
from ..spec.load import INPUT, Node, Spec


@dataclass(frozen=True)
class TracedNode:
    node: Node
    in_shape: Shape  # of its first input (its only one, unless it is a join)
    out: Inferred
    in_shapes: tuple[Shape, ...] = ()  # one per name in node.inputs, in that order

    @property
    def out_shape(self) -> Shape:
        return self.out.out_shape


@dataclass(frozen=True)
class ShapeTrace:
    spec: Spec
    nodes: tuple[TracedNode, ...]

    @property
    def output_shape(self) -> Shape:
        return self.nodes[-1].out_shape

    @property
    def params(self) -> int:
        return sum(t.out.params for t in self.nodes)

    @property
    def flops(self) -> int:
        return sum(t.out.flops for t in self.nodes)

    @property
    def num_classes(self) -> int:
        return self.output_shape[0]

    def readers(self) -> dict[str, tuple[str, ...]]:
        """Layer name (or INPUT) -> the names of the layers that read it, in spec order."""
        out: dict[str, list[str]] = {INPUT: [], **{t.node.name: [] for t in self.nodes}}
        for t in self.nodes:
            for name in dict.fromkeys(t.node.inputs):
                out[name].append(t.node.name)
        return {k: tuple(v) for k, v in out.items()}

    @property
    def is_chain(self) -> bool:
        """Whether every layer reads exactly the layer before it (the input, for the first)."""
        previous = INPUT
        for t in self.nodes:
            if t.node.inputs != (previous,):
                return False
            previous = t.node.name
        return True


def check(spec: Spec) -> ShapeTrace:
    """The ShapeTrace of a spec, or SpecError at the first layer that cannot take its input."""
    outputs: dict[str, LayerInput] = {
        INPUT: LayerInput(spec.input_shape, source=INPUT, line=spec.input_line)
    }
    traced: list[TracedNode] = []
    for node in spec.nodes:
        kind = REGISTRY[node.type]
        inputs = tuple(outputs[name] for name in node.inputs)
        try:
            out = kind.rule(node.args, inputs if kind.join else inputs[0])
        except ShapeProblem as exc:
            line = node.key_lines.get(exc.key, node.line) if exc.key else node.line
            raise SpecError(
                Problem(
                    str(exc),
                    Location(spec.path, line),
                    layer=node.label,
                    hint=exc.hint,
                )
            ) from None
        outputs[node.name] = LayerInput(out.out_shape, out.factors, node.name, node.line)
        traced.append(TracedNode(node, inputs[0].shape, out, tuple(i.shape for i in inputs)))
    return ShapeTrace(spec, tuple(traced))
