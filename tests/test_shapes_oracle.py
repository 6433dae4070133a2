"""Torch is the oracle: lenetc's static shapes and parameter counts against a real forward pass.

Each generated stack goes through lenetc (YAML text -> load -> check, no torch) and through torch
layers built directly from the same YAML keys (nn.Conv2d(...), F.max_pool2d(...): the `torch`
column of tests/kinds.py, one row per kind; lenetc's renderer is not used, so the oracle is
independent). Then:
- torch runs the whole stack  -> lenetc accepts it, and every layer's output shape and parameter
  count equal torch's;
- torch refuses layer i       -> lenetc refuses it with a SpecError (exit 2) located at layer i's
  YAML line and naming the layer.
Deliberate differences, where lenetc refuses what torch would run (DELIBERATE below), count as
refusals: linear on a tensor that is not flat (torch applies it to the last axis; lenetc asks for a
flatten), softmax / log_softmax over the batch axis, adaptive_avg_pool2d on a flat (N, F) tensor
(torch reads it as one unbatched (C, H, W) = (N, F) image and pools across samples).

Graphs (tests/strategies.graphs: skip connections over random stacks, concatenations of
branches) are run the same way, value by value: a layer reads the tensors its `inputs` name. An add
of unequal shapes (torch would broadcast) and a cat along the batch axis are deliberate refusals.
Broken references (unknown, forward, a dangling branch) are refused at the line of the layer.

Runs EXAMPLES stacks per property (LENETC_HYPOTHESIS_EXAMPLES, default 300).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lenetc.check.shapes import check
from lenetc.errors import SpecError
from lenetc.layers import REGISTRY
from lenetc.spec.load import parse_spec
from lenetc.spec.yamlsafe import load_yaml_text
from tests.strategies import (
    EXAMPLES,
    KINDS,
    LAYERS_LINE,
    graphs,
    spec_yaml,
    stack_spec,
    stacks,
    valid_specs,
)


@pytest.fixture(autouse=True, scope="module")
def _oracle_mode():
    """No autograd and one thread for tiny tensors, restored afterwards: other tests train."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with torch.no_grad():
        yield
    torch.set_num_threads(threads)


pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _batch_axis(a: dict, x: torch.Tensor) -> bool:
    dim = a.get("dim", 1)
    return -x.dim() <= dim < x.dim() and dim % x.dim() == 0


# Where lenetc refuses on purpose what torch would run: (keys, input) -> refused?
DELIBERATE: dict[str, Callable[[dict, Any], bool]] = {
    "linear": lambda a, x: x.dim() != 2,
    "softmax": _batch_axis,
    "log_softmax": _batch_axis,
    "adaptive_avg_pool2d": lambda a, x: x.dim() != 4,
    "add": lambda a, xs: len({tuple(t.shape) for t in xs}) > 1,
    "cat": lambda a, xs: len({t.dim() for t in xs}) == 1 and _batch_axis(a, xs[0]),
}


@dataclass
class TorchRun:
    shapes: list[tuple[int, ...]]  # per layer that ran, batch omitted
    params: list[int]
    refused_at: int | None  # index of the first layer torch (or a deliberate rule) refused
    why: str = ""


def torch_run(shape: tuple[int, ...], layers: list[dict], batch: int = 2) -> TorchRun:
    """Each layer in torch, in order; a layer reads the tensors its `inputs` name (the network's
    input is `input`), else the one before it. A join's builder takes the list of operands."""
    torch.manual_seed(0)
    x = torch.randn(batch, *shape)
    values = {"input": x}
    run = TorchRun([], [], None)
    for i, a in enumerate(layers):
        keys = {k: v for k, v in a.items() if k not in ("type", "name", "inputs")}
        row = KINDS[a["type"]]
        operands = [values[n] for n in a["inputs"]] if "inputs" in a else [x]
        arg = operands if row.join else operands[0]
        rule = DELIBERATE.get(a["type"])
        if rule is not None and rule(keys, arg):
            run.refused_at, run.why = i, "deliberate"
            return run
        try:
            fn, module = row.torch(keys, arg)
            x = fn(arg)
        except (RuntimeError, ValueError, IndexError, TypeError) as exc:
            run.refused_at, run.why = i, f"{type(exc).__name__}: {exc}"
            return run
        if x.numel() == 0:  # torch may return an empty tensor instead of raising
            run.refused_at, run.why = i, "empty output"
            return run
        if "name" in a:
            values[a["name"]] = x
        run.shapes.append(tuple(x.shape[1:]))
        run.params.append(sum(p.numel() for p in module.parameters()) if module else 0)
    return run


def lenetc_check(shape: tuple[int, ...], layers: list[dict]):
    text = spec_yaml(stack_spec(shape, layers))
    data = load_yaml_text(text.encode(), "gen.yaml")
    return check(parse_spec(data, "gen.yaml", Path(".")))


def assert_agree(shape: tuple[int, ...], layers: list[dict]) -> TorchRun:
    run = torch_run(shape, layers)
    where = f"\ninput {shape}\n" + spec_yaml(stack_spec(shape, layers))
    if run.refused_at is None:
        try:
            trace = lenetc_check(shape, layers)
        except SpecError as exc:
            raise AssertionError(f"torch runs it, lenetc refuses:\n{exc}{where}") from None
        got = [(t.out_shape, t.out.params) for t in trace.nodes]
        want = list(zip(run.shapes, run.params))
        assert got == want, f"(shape, params) per layer: lenetc {got} != torch {want}{where}"
        return run
    with pytest.raises(SpecError) as caught:
        lenetc_check(shape, layers)
    i = run.refused_at
    first = caught.value.problems[0]
    line = LAYERS_LINE + 1 + i
    assert first.at.line == line, (
        f"torch refuses layer {i} (line {line}: {run.why}); lenetc says:\n{caught.value}{where}"
    )
    assert first.layer and first.layer.endswith(f"({layers[i]['type']})"), str(caught.value)
    assert caught.value.exit_code == 2
    return run


# ---- the properties --------------------------------------------------------------------------


TALLY = {"stacks": 0, "refused": 0}


@PROPERTY
@given(stacks())
def test_random_stacks_agree_with_torch(stack):
    run = assert_agree(*stack)
    TALLY["stacks"] += 1
    TALLY["refused"] += run.refused_at is not None


@PROPERTY
@given(valid_specs(classifier=True))
def test_valid_specs_are_valid(spec):
    """tests/strategies.valid_specs() keeps its promise: torch runs every one, lenetc agrees."""
    run = assert_agree(tuple(spec["input"]["shape"]), spec["layers"])
    assert run.refused_at is None, run.why


@PROPERTY
@given(st.sampled_from(sorted(KINDS)), st.data())
def test_every_kind_alone_on_any_input(kind, data):
    """One layer of each kind on a random input, its keys drawn to fit or blind."""
    from tests.strategies import input_shapes

    shape = data.draw(input_shapes())
    args, _ = KINDS[kind].draw(data.draw, shape, data.draw(st.booleans()))
    assert_agree(shape, [args])


def test_mix_of_verdicts_is_healthy():
    """The generator exercises both verdicts: a property seeing only valid stacks proves little."""
    TALLY.update(stacks=0, refused=0)
    test_random_stacks_agree_with_torch()  # the property above, run here so this test stands alone
    stacks_, refused = TALLY["stacks"], TALLY["refused"]
    assert stacks_ >= min(EXAMPLES, 100), TALLY
    assert 0.05 * stacks_ < refused < 0.7 * stacks_, TALLY


# ---- graphs ------------------------------------------------------------------------------------

GRAPH_TALLY = {"graphs": 0, "refused": 0, "joins": 0, "refused_at_join": 0}
# A graph is a few stacks: half as many per run as stacks keeps the suite's time (thousands with
# LENETC_HYPOTHESIS_EXAMPLES=6000, as run before each change to the checker or the strategies).
GRAPHS = settings(PROPERTY, max_examples=max(EXAMPLES // 2, 1))


@GRAPHS
@given(graphs())
def test_random_graphs_agree_with_torch(graph):
    run = assert_agree(*graph)
    layers = graph[1]
    GRAPH_TALLY["graphs"] += 1
    GRAPH_TALLY["joins"] += any(KINDS[a["type"]].join for a in layers)
    GRAPH_TALLY["refused"] += run.refused_at is not None
    if run.refused_at is not None:
        GRAPH_TALLY["refused_at_join"] += KINDS[layers[run.refused_at]["type"]].join


def test_graph_verdicts_are_healthy():
    """Graphs with joins, and both verdicts at the joins themselves: mismatched adds and cats."""
    for key in GRAPH_TALLY:
        GRAPH_TALLY[key] = 0
    test_random_graphs_agree_with_torch()
    n = GRAPH_TALLY["graphs"]
    assert n >= min(EXAMPLES // 2, 100), GRAPH_TALLY
    assert GRAPH_TALLY["joins"] > 0.5 * n, GRAPH_TALLY
    assert 0.1 * n < GRAPH_TALLY["refused"] < 0.8 * n, GRAPH_TALLY
    assert GRAPH_TALLY["refused_at_join"] > 0.03 * n, GRAPH_TALLY


def _load(shape, layers):
    text = spec_yaml(stack_spec(shape, layers))
    return parse_spec(load_yaml_text(text.encode(), "gen.yaml"), "gen.yaml", Path("."))


@GRAPHS
@given(graphs(), st.sampled_from(["unknown", "forward", "itself", "dangling"]), st.data())
def test_broken_references_are_refused_at_their_layer(graph, mistake, data):
    """A reference to no layer, to a later layer or to the layer itself, and a branch nobody
    reads: refused by the loader (exit 2), at the line of the layer at fault, naming it."""
    shape, layers = graph
    layers = [dict(a) for a in layers]
    readers = [i for i, a in enumerate(layers) if "inputs" in a]
    if mistake == "dangling":
        at = data.draw(st.integers(0, len(layers) - 1))
        before = layers[at - 1].setdefault("name", f"n{at - 1}") if at else "input"
        layers[at].setdefault("inputs", [before])
        layers.insert(at, {"type": "relu", "inputs": ["input"], "name": "dangle"})
        want = "its output is never used"
    else:
        if not readers:
            layers.append({"type": "relu"})
            readers = [len(layers) - 1]
            layers[-1]["inputs"] = [
                layers[-2].setdefault("name", "prev") if len(layers) > 1 else "input"
            ]
        at = data.draw(st.sampled_from(readers))
        refs = layers[at]["inputs"]
        k = data.draw(st.integers(0, len(refs) - 1))
        if mistake == "unknown":
            refs[k], want = "nowhere_9", "no layer above this one is named 'nowhere_9'"
        elif mistake == "itself":
            refs[k] = layers[at].setdefault("name", "me")
            want = "is this layer itself"
        else:
            layers.append({"type": "relu", "name": "later", "inputs": [refs[k]]})
            refs[k], want = "later", "'later' is defined later"
    with pytest.raises(SpecError) as caught:
        _load(shape, layers)
    first = caught.value.problems[0]
    assert want in first.message, str(caught.value)
    assert first.at.line == LAYERS_LINE + 1 + at, str(caught.value)
    assert first.layer and first.layer.endswith(f"({layers[at]['type']})"), str(caught.value)


# ---- table-driven rows: every kind has one, and hand-picked edge cases ---------------------


def test_every_registered_kind_has_an_oracle_row_and_a_strategy_row():
    assert set(KINDS) == set(REGISTRY), "add a row to tests/kinds.py KINDS for each new kind"


EDGES = [  # (input shape, layers): cases a random draw reaches rarely
    ((1, 32, 32), [{"type": "conv2d", "out_channels": 6, "kernel_size": 5}]),
    ((1, 7, 3), [{"type": "conv2d", "out_channels": 8, "kernel_size": [2, 3]}]),
    ((3, 9, 9), [{"type": "conv2d", "out_channels": 4, "kernel_size": [2, 4], "padding": "same"}]),
    (
        (3, 9, 9),
        [{"type": "conv2d", "out_channels": 4, "kernel_size": 4, "padding": "same", "dilation": 2}],
    ),
    (
        (3, 9, 9),
        [{"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": "same", "stride": 2}],
    ),
    ((2, 4, 4), [{"type": "conv2d", "out_channels": 4, "kernel_size": 9, "padding": 2}]),
    ((2, 4, 4), [{"type": "conv2d", "out_channels": 4, "kernel_size": 9, "padding": 3}]),
    ((6, 5, 5), [{"type": "conv2d", "out_channels": 6, "kernel_size": 1, "groups": 6}]),
    ((6, 5, 5), [{"type": "conv2d", "out_channels": 6, "kernel_size": 1, "groups": 4}]),
    ((1, 5, 5), [{"type": "max_pool2d", "kernel_size": 2, "ceil_mode": True}]),
    (
        (1, 5, 5),
        [{"type": "max_pool2d", "kernel_size": 2, "stride": 2, "padding": 1, "ceil_mode": True}],
    ),
    (
        (1, 4, 4),
        [{"type": "max_pool2d", "kernel_size": 3, "stride": 3, "padding": 1, "ceil_mode": True}],
    ),
    (
        (1, 6, 6),
        [{"type": "avg_pool2d", "kernel_size": 4, "stride": 3, "padding": 2, "ceil_mode": True}],
    ),
    ((1, 9, 9), [{"type": "max_pool2d", "kernel_size": 3, "padding": 1, "dilation": 2}]),
    ((1, 9, 9), [{"type": "max_pool2d", "kernel_size": 10}]),
    ((1, 9, 9), [{"type": "max_pool2d", "kernel_size": 10, "padding": 5}]),
    ((1, 9, 9), [{"type": "avg_pool2d", "kernel_size": 2, "padding": 2}]),
    ((1, 3, 3), [{"type": "adaptive_avg_pool2d", "output_size": [5, 1]}]),
    ((5,), [{"type": "adaptive_avg_pool2d", "output_size": 1}]),
    ((3, 4, 4), [{"type": "linear", "out_features": 2}]),
    ((3, 4, 4), [{"type": "flatten"}, {"type": "flatten"}, {"type": "linear", "out_features": 2}]),
    ((3, 4, 4), [{"type": "flatten"}, {"type": "linear", "out_features": 2, "in_features": 47}]),
    ((3, 4, 4), [{"type": "softmax", "dim": -3}, {"type": "log_softmax", "dim": 3}]),
    ((3, 4, 4), [{"type": "softmax", "dim": -4}]),
    ((10,), [{"type": "softmax", "dim": 0}]),
    ((10,), [{"type": "log_softmax", "dim": -1}]),
    ((10,), [{"type": "batch_norm2d"}]),
    ((3, 1, 1), [{"type": "batch_norm2d", "affine": False}]),
    ((3, 2, 2), [{"type": "batch_norm2d", "num_features": 4}]),
    ((10,), [{"type": "conv2d", "out_channels": 1, "kernel_size": 1}]),
]


@pytest.mark.parametrize("shape, layers", EDGES, ids=lambda v: str(v)[:60])
def test_edge_cases_agree_with_torch(shape, layers):
    assert_agree(shape, layers)
