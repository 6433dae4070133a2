"""Stage 2, check: Spec -> ShapeTrace, every shape derived statically and explained.

Walks the nodes in order (each reads the outputs of its `inputs`), applying each kind's shape rule
from the registry. Returns per node: input and output shape (batch omitted), the arithmetic as
text, parameters and FLOPs. Raises SpecError at the first layer whose input does not fit (later
shapes are unknown then), located at the YAML line of the key at fault. Also refuses a model whose
parameters or activations exceed the memory budget, before anything is allocated. No torch import.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import Location, Problem, SpecError
from ..layers import REGISTRY, Inferred, LayerInput, ShapeProblem
from ..layers.base import Shape, fmt_shape, numel
from ..spec.load import INPUT, Node, Spec

MAX_PARAMS = 50_000_000  # 200 MB of float32 weights: far past a "small network"
MAX_ACTIVATIONS = 32_000_000  # elements of one sample's largest tensor (128 MB in float32)


@dataclass(frozen=True)
class TracedNode:
    node: Node
    in_shape: Shape
    out: Inferred

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


def check(spec: Spec) -> ShapeTrace:
    """The ShapeTrace of a spec, or SpecError at the first layer that cannot take its input."""
    if numel(spec.input_shape) > MAX_ACTIVATIONS:
        raise SpecError(
            Problem(
                f"the input {fmt_shape(spec.input_shape)} has {numel(spec.input_shape):,} "
                "elements, "
                f"more than the budget of {MAX_ACTIVATIONS:,}",
                Location(spec.path, spec.input_line),
            )
        )
    outputs: dict[str, LayerInput] = {INPUT: LayerInput(spec.input_shape)}
    traced: list[TracedNode] = []
    for node in spec.nodes:
        (source,) = node.inputs  # chains today; add/concat nodes will read several
        inp = outputs[source]
        try:
            out = REGISTRY[node.type].rule(node.args, inp)
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
        if numel(out.out_shape) > MAX_ACTIVATIONS:
            raise SpecError(
                Problem(
                    f"its output {fmt_shape(out.out_shape)} has {numel(out.out_shape):,} elements "
                    f"per sample, more than the budget of {MAX_ACTIVATIONS:,}",
                    Location(spec.path, node.line),
                    layer=node.label,
                    hint="reduce channels or spatial size (stride, pooling) before this layer",
                )
            )
        outputs[node.name] = LayerInput(out.out_shape, out.factors)
        traced.append(TracedNode(node, inp.shape, out))
    trace = ShapeTrace(spec, tuple(traced))
    if trace.params > MAX_PARAMS:
        biggest = max(traced, key=lambda t: t.out.params)
        raise SpecError(
            Problem(
                f"the model has {trace.params:,} parameters ({trace.params * 4 / 1e9:.1f} GB in "
                f"float32), more than the budget of {MAX_PARAMS:,}",
                Location(spec.path, biggest.node.line),
                layer=biggest.node.label,
                hint=f"the largest layer is {biggest.node.name} with {biggest.out.params:,}",
            )
        )
    return trace
