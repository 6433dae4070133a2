"""The generated module, imported and run, is the network the checker described (torch: oracle).

For every spec, for one example per layer kind (the `example` column of tests/kinds.py, where a
new kind adds its one test row) and for random valid stacks: the parameter count per layer and in
total, the output shape of every parametric layer (forward hooks) and of every forward statement
(run one by one), and the shape each comment claims, all equal what `lenetc check` reported. The
module is also scriptable (torch.jit.script) and exportable with a dynamic batch axis
(torch.export), with the same outputs as eager.
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from kinds import KINDS
from strategies import graphs, spec_from_dict, valid_specs

from lenetc.check.shapes import ShapeTrace, check
from lenetc.errors import SpecError
from lenetc.layers import REGISTRY
from lenetc.spec.load import load_spec
from lenetc.targets.torch import forward_lines, render

ROOT = Path(__file__).resolve().parent.parent
SPEC_FILES = sorted((ROOT / "specs").glob("*.yaml")) + sorted((ROOT / "tests/specs").glob("*.yaml"))


_counter = itertools.count()


def case_trace(kind: str) -> ShapeTrace:
    shape, layers = KINDS[kind].example
    return check(
        spec_from_dict(
            {"name": f"case_{kind}", "input": {"shape": shape}, "layers": layers}, f"{kind}.yaml"
        )
    )


def load_module(source: str, class_name: str, folder: Path) -> Any:
    """Import generated source as a real file (TorchScript reads the source of its methods)."""
    name = f"lenetc_generated_{next(_counter)}"
    path = folder / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return getattr(module, class_name)


def assert_matches_trace(trace: ShapeTrace, source: str, folder: Path) -> torch.nn.Module:
    """Parameters, per-layer and per-statement shapes, and comments agree with the trace."""
    torch.manual_seed(0)
    model = load_module(source, trace.spec.class_name, folder)().eval()
    by_name = {t.node.name: t for t in trace.nodes}
    assert sum(p.numel() for p in model.parameters()) == trace.params
    for name, child in model.named_children():
        assert name in by_name, f"attribute {name} is no layer of the spec"
        assert sum(p.numel() for p in child.parameters()) == by_name[name].out.params, name
    assert [n for n, _ in model.named_children()] == [
        t.node.name for t in trace.nodes if REGISTRY[t.node.type].module
    ]
    seen: dict[str, tuple[int, ...]] = {}
    hooks = [
        child.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o.shape))
        for name, child in model.named_children()
    ]
    x = torch.randn(3, *trace.spec.input_shape)
    out = model(x)
    for hook in hooks:
        hook.remove()
    assert seen.keys() == dict(model.named_children()).keys()
    assert tuple(out.shape) == (3, *trace.output_shape)
    for name, shape in seen.items():
        assert tuple(shape) == (3, *by_name[name].out_shape), name

    # Run forward one statement at a time: each ends at the shape the trace gives for its last
    # layer, and at the shape its comment claims.
    lines = forward_lines(trace)
    statements, comments = _forward_statements(source)
    assert len(statements) == len(lines)
    scope = {"torch": torch, "F": torch.nn.functional, "nn": torch.nn, "self": model, "x": x}
    with torch.no_grad():
        for code, comment, line in zip(statements, comments, lines):
            exec(code.replace("return ", "x = ", 1), scope)  # our own generated statement
            if not line.layers:  # `identity = x`: a value kept for a later join
                assert re.fullmatch(r"\w+ = x", code), code
                continue
            expected = (3, *trace.nodes[line.layers[-1]].out_shape)
            assert tuple(scope[line.assigns or "x"].shape) == expected, code
            claimed = re.match(r"\(N((?:, \d+)+)\)", comment)
            assert claimed, f"no shape comment for {code!r}"
            assert (3, *map(int, claimed.group(1)[2:].split(", "))) == expected, comment
        torch.testing.assert_close(scope["x"], model(x), rtol=0, atol=0)
    return model


def _forward_statements(source: str) -> tuple[list[str], list[str]]:
    """The statements of forward and the comment of each (inline, or the lines just above)."""
    lines = source.splitlines()
    tree = ast.parse(source)
    forward = next(
        n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "forward"
    )
    statements, comments = [], []
    for stmt in forward.body:
        statements.append(ast.get_source_segment(source, stmt))
        first = lines[stmt.lineno - 1]
        if "  # " in first:
            comments.append(first.split("  # ", 1)[1])
            continue
        above, k = [], stmt.lineno - 2
        while lines[k].strip().startswith("# "):
            above.insert(0, lines[k].strip()[2:])
            k -= 1
        comments.append(" ".join(above))
    return statements, comments


def assert_scriptable(model: torch.nn.Module, shape: tuple[int, ...]) -> None:
    x = torch.randn(5, *shape)
    scripted = torch.jit.script(model)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x))


def ruff_formatted(source: str) -> bool:
    """Whether ruff format (isolated, defaults: line length 88) leaves the source unchanged."""
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed: it is a dev dependency (pip install -e '.[dev]')")
    done = subprocess.run(
        [ruff, "format", "--isolated", "-"],
        input=source,
        text=True,
        capture_output=True,
        check=True,
    )
    return done.stdout == source


# ---- every spec file ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.stem)
def test_spec_module_matches_trace_scripts_and_exports(path: Path, tmp_path: Path) -> None:
    trace = check(load_spec(path))
    model = assert_matches_trace(trace, render(trace), tmp_path)
    assert_scriptable(model, trace.spec.input_shape)
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(
        model, (torch.randn(2, *trace.spec.input_shape),), dynamic_shapes={"x": {0: batch}}
    )
    for n in (1, 3, 64):
        x = torch.randn(n, *trace.spec.input_shape)
        with torch.no_grad():
            torch.testing.assert_close(program.module()(x), model(x))


# ---- one case per layer kind -------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_kind_case(kind: str, tmp_path: Path) -> None:
    trace = case_trace(kind)
    assert kind in {t.node.type for t in trace.nodes}
    source = render(trace)
    model = assert_matches_trace(trace, source, tmp_path)
    assert_scriptable(model, trace.spec.input_shape)
    assert ruff_formatted(source)


def test_dropout_is_active_only_in_training(tmp_path: Path) -> None:
    trace = case_trace("dropout")
    model = load_module(render(trace), trace.spec.class_name, tmp_path)()
    x = torch.ones(64, 10)
    model.train()
    assert not torch.equal(model(x), model(x)), "dropout never dropped anything in training"
    model.eval()
    torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)


# ---- random graphs -----------------------------------------------------------------------------


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(graphs(max_blocks=4, misfit=0))
def test_random_graph(tmp_path: Path, graph) -> None:
    """Residual blocks and concatenated branches: the module is the graph the checker traced,
    scripts, is formatted, and names only the values read again later."""
    shape, layers = graph
    spec = spec_from_dict({"name": "graph", "input": {"shape": list(shape)}, "layers": layers})
    try:
        trace = check(spec)
    except SpecError:  # a mismatched join: the oracle tests cover refusals
        assume(False)
    source = render(trace)
    model = assert_matches_trace(trace, source, tmp_path)
    assert_scriptable(model, trace.spec.input_shape)
    assert ruff_formatted(source), source
    assert max(len(line) for line in source.splitlines()) <= 88, source


def test_chain_forward_uses_only_x() -> None:
    """A chain never names a value: every statement assigns x (the style of the goldens)."""
    trace = check(load_spec(ROOT / "specs" / "lenet5.yaml"))
    assert {line.assigns for line in forward_lines(trace)} == {"x", ""}


def test_residual_block_reads_like_torchvision() -> None:
    source = render(check(load_spec(ROOT / "specs" / "resnet8.yaml")))
    assert "        identity = x\n" in source
    assert "        x = F.relu(x + identity)  # (N, 16, 16, 16)\n" in source
    assert "        identity = self.proj2_bn(self.proj2(identity))\n" in source


# ---- random valid stacks -----------------------------------------------------------------------

RANDOM_EXAMPLES = 60
RANDOM_SEEN: list[str] = []


@settings(
    max_examples=RANDOM_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(valid_specs(named=True))
def test_random_stack(tmp_path: Path, data: dict[str, Any]) -> None:
    spec = spec_from_dict(data)  # the strategy draws only well-formed specs: a failure is its bug
    try:
        trace = check(spec)
    except SpecError:  # a size the strategy's own shape tracking let through
        assume(False)
    source = render(trace)
    RANDOM_SEEN.append(source)
    model = assert_matches_trace(trace, source, tmp_path)
    assert_scriptable(model, trace.spec.input_shape)
    assert ruff_formatted(source), source
    assert max(len(line) for line in source.splitlines()) <= 88, source
