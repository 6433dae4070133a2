"""render: golden sources, determinism, formatting, template rules, registry completeness, and
hostile specs that must never put text of theirs into model.py. No torch needed here."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
from click.testing import CliRunner
from kinds import KINDS
from test_codegen import SPEC_FILES, ruff_formatted

from lenetc.check.shapes import check
from lenetc.cli import main
from lenetc.layers import REGISTRY
from lenetc.spec.load import load_spec
from lenetc.targets.c import ContractProblem, contract
from lenetc.targets.templates import environment, fragment, templates_dir
from lenetc.targets.torch import render
from lenetc.targets.values import LayerView

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = templates_dir() / "torch"


def render_file(path: Path) -> str:
    return render(check(load_spec(path)))


# ---- golden files and determinism --------------------------------------------------------------


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.stem)
def test_golden_source(path: Path, golden) -> None:
    golden.check(f"render/{path.stem}.py.txt", render_file(path))


def test_render_is_deterministic_across_processes_and_hash_seeds() -> None:
    """Two fresh interpreters with different hash seeds give the same bytes as this one, render
    never imports torch, and no path, time or version gets into the file."""
    script = (
        "import json, sys; from pathlib import Path;"
        "from lenetc.targets.torch import render; from lenetc.check.shapes import check;"
        "from lenetc.spec.load import load_spec;"
        "out = {p: render(check(load_spec(p))) for p in sys.argv[1:]};"
        "assert 'torch' not in sys.modules, 'render imported torch';"
        "print(json.dumps(out))"
    )
    args = [str(p) for p in SPEC_FILES]
    runs = []
    for seed in ("0", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(ROOT))
        done = subprocess.run(
            [sys.executable, "-c", script, *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        runs.append(done.stdout)
    assert runs[0] == runs[1]
    here = {str(p): render_file(p) for p in SPEC_FILES}
    assert json.loads(runs[0]) == here
    from lenetc import __version__

    for source in here.values():
        assert str(ROOT) not in source and "/tmp" not in source
        assert __version__ not in source
        assert not re.search(r"\b20\d\d-\d\d-\d\d\b", source)


def test_spec_path_spelling_does_not_change_the_source(tmp_path: Path) -> None:
    spec = ROOT / "specs" / "lenet5.yaml"
    copy = tmp_path / "deeper" / "lenet5.yaml"
    copy.parent.mkdir()
    copy.write_bytes(spec.read_bytes())
    relative = os.path.relpath(spec)
    assert render_file(spec) == render_file(Path(relative)) == render_file(copy)


def test_lenet5_reads_like_the_tutorial() -> None:
    source = render_file(ROOT / "specs" / "lenet5.yaml")
    assert "self.conv1 = nn.Conv2d(1, 6, kernel_size=5)" in source
    assert "self.fc1 = nn.Linear(16 * 5 * 5, 120)" in source
    assert "x = F.max_pool2d(F.relu(self.conv1(x)), 2)" in source
    assert "# (N, 6, 14, 14): (32 - 5 + 1) / 2 = 14" in source
    assert "# (N, 16, 5, 5): (14 - 5 + 1) / 2 = 5" in source
    assert "x = torch.flatten(x, 1)  # (N, 400): 16 x 5 x 5 = 400" in source
    assert "return self.fc3(x)  # (N, 10)" in source
    assert "Input (N, 1, 32, 32) -> output (N, 10); 61,706 parameters." in source
    assert "def forward(self, x: torch.Tensor) -> torch.Tensor:" in source


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.stem)
def test_generated_source_is_standalone_and_formatted(path: Path) -> None:
    source = render_file(path)
    tree = ast.parse(source)
    imports = [ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert set(imports) <= {
        "import torch",
        "import torch.nn.functional as F",
        "from torch import nn",
    }
    uses_f = any(isinstance(n, ast.Name) and n.id == "F" for n in ast.walk(tree))
    assert ("import torch.nn.functional as F" in imports) == uses_f
    assert all(len(line) <= 88 for line in source.splitlines()), "a line is over 88 characters"
    assert ruff_formatted(source)


def test_generated_sources_pass_ruff_check(tmp_path: Path) -> None:
    """`ruff format --check` and `ruff check` (isolated: ruff's defaults, line length 88)."""
    import shutil

    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed: it is a dev dependency (pip install -e '.[dev]')")
    for path in SPEC_FILES:
        (tmp_path / f"{path.stem}.py").write_text(render_file(path), encoding="utf-8")
    for command in (["format", "--check"], ["check", "--select", "E,F,W,I,B,UP"]):
        done = subprocess.run(
            [ruff, *command, "--isolated", str(tmp_path)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr


# ---- templates: one fragment per kind, no branching on kinds, no arithmetic --------------------


def test_every_kind_has_a_fragment_a_case_and_a_readme_row() -> None:
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text(encoding="utf-8") if readme_path.is_file() else ""
    missing = []
    for kind in sorted(REGISTRY):
        path = TEMPLATES / "layers" / f"{kind}.j2"
        if not path.is_file():
            missing.append(f"{kind}: no fragment {path.relative_to(ROOT)}")
            continue
        macros = fragment("torch", kind)
        if not callable(getattr(macros, "call", None)):
            missing.append(f"{kind}: fragment has no `call` macro")
        if REGISTRY[kind].module and not callable(getattr(macros, "init", None)):
            missing.append(f"{kind}: parametric kind's fragment has no `init` macro")
        if getattr(macros, "starts_line", False) not in (True, False):
            missing.append(f"{kind}: `starts_line` must be set to true or false")
        c_path = templates_dir() / "c" / "layers" / f"{kind}.j2"
        if not c_path.is_file():
            missing.append(f"{kind}: no C fragment {c_path.relative_to(ROOT)}")
        else:
            try:
                contract(kind)  # kernel and call, or alias; every setting known and typed
            except ContractProblem as problem:
                missing.append(f"{kind}: {problem}")
        if kind not in KINDS:
            missing.append(f"{kind}: no row in KINDS (tests/kinds.py)")
        if not re.search(rf"^\| `{re.escape(kind)}` \|", readme, re.M):
            missing.append(f"{kind}: no row '| `{kind}` |' in README.md's layer table")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("target", ["torch", "c"])
def test_no_fragment_without_a_kind(target: str) -> None:
    orphans = {p.stem for p in (templates_dir() / target / "layers").glob("*.j2")} - set(REGISTRY)
    assert not orphans


@pytest.mark.parametrize("name", ["torch/module.py.j2", "c/model.c.j2", "c/model.h.j2"])
def test_file_templates_never_name_a_kind(name: str) -> None:
    text = (templates_dir() / name).read_text(encoding="utf-8")
    assert not [kind for kind in REGISTRY if re.search(rf"\b{kind}\b", text)]
    assert ".type" not in text


@pytest.mark.parametrize(
    "path",
    sorted(TEMPLATES.rglob("*.j2")) + sorted((templates_dir() / "c").rglob("*.j2")),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_templates_hold_no_arithmetic(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for expr in re.findall(r"\{\{-?(.*?)-?\}\}", text, re.S) + re.findall(
        r"\{%-?(.*?)-?%\}", text, re.S
    ):
        expr = re.sub(r'"[^"]*"', '""', expr)  # a string's text is no arithmetic
        assert not re.search(r"[-+*/%]|\bsum\b|\blength\b|\|", expr), (path.name, expr)


def test_environment_is_strict() -> None:
    assert environment().undefined is jinja2.StrictUndefined
    with pytest.raises(jinja2.UndefinedError):
        str(fragment("torch", "conv2d").init(LayerView("conv1", {}, ())))


# ---- hostile specs: rejected with exit 2, or rendered inert ------------------------------------

LENET_HEAD = "name: tiny\ninput: {shape: [1, 8, 8]}\nlayers:\n"
HOSTILE_NAMES = [
    "x); import os; os.system('echo pwned'); (x",
    'conv"1',
    "conv'1",
    "conv\n1",
    "{{ 7 * 7 }}",
    "{% raw %}",
    "__class__",
    "forward",
    "training",
    "F",
    "cоnv1",  # Cyrillic o
    "import",
    "a" * 65,
]


def _run(tmp_path: Path, spec_text: str, file: str = "spec.yaml"):
    spec = tmp_path / file
    spec.write_text(spec_text, encoding="utf-8")
    out = tmp_path / "model.py"
    result = CliRunner().invoke(main, ["render", str(spec), "-o", str(out)])
    return result, out


def _yaml(value: str) -> str:
    return json.dumps(value)  # JSON strings are YAML strings; keeps quotes and newlines exact


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_layer_name_is_rejected(tmp_path: Path, name: str) -> None:
    spec = (
        LENET_HEAD + f"  - {{type: conv2d, name: {_yaml(name)}, out_channels: 2, kernel_size: 3}}\n"
    )
    result, out = _run(tmp_path, spec)
    assert result.exit_code == 2, result.output
    assert "spec.yaml:4: " in result.output and "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("key", ["name", "class_name"])
@pytest.mark.parametrize("value", HOSTILE_NAMES[:6] + ["Net(nn.Module):\n    pass\nclass X"])
def test_hostile_model_name_is_rejected(tmp_path: Path, key: str, value: str) -> None:
    spec = LENET_HEAD.replace(
        "name: tiny",
        f"name: tiny\n{key}: {_yaml(value)}" if key == "class_name" else f"name: {_yaml(value)}",
    )
    result, out = _run(tmp_path, spec + "  - {type: relu}\n")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not out.exists()


@pytest.mark.parametrize(
    "layer",
    [
        "{type: dropout, p: '0.5, training=True); import os  #'}",
        "{type: conv2d, out_channels: 2, kernel_size: 3, padding: \"same'); import os; ('\"}",
        "{type: gelu, approximate: 'tanh\"); import os  #'}",
        "{type: conv2d, out_channels: '2 + 1', kernel_size: 3}",
        "{type: linear, out_features: 3, bias: 'True or __import__(\"os\")'}",
        "{type: max_pool2d, kernel_size: '{{ 2 }}'}",
        "{type: softmax, dim: '1) or (1'}",
        "{type: leaky_relu, negative_slope: .nan}",
        "{type: 'relu(x)); import os; (F.relu'}",
        "{type: relu, '{% raw %}': 1}",
    ],
)
def test_hostile_value_is_rejected(tmp_path: Path, layer: str) -> None:
    result, out = _run(
        tmp_path,
        LENET_HEAD + "  - {type: flatten}\n  - " + layer + "\n"
        if "linear" in layer
        else LENET_HEAD + "  - " + layer + "\n",
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not out.exists()
    assert re.search(r"spec\.yaml:\d+: ", result.output), result.output


@pytest.mark.parametrize(
    "file",
    ['evil"""import os.yaml', "evil{{x}}.yaml", "e\nimport os.yaml", "e'''.yaml", "ok_name.yaml"],
)
def test_hostile_spec_file_name_is_rendered_inert(tmp_path: Path, file: str) -> None:
    result, out = _run(tmp_path, LENET_HEAD + "  - {type: relu}\n", file=file)
    assert result.exit_code == 0, result.output
    source = out.read_text(encoding="utf-8")
    ast.parse(source)
    shown = "ok_name.yaml" if file == "ok_name.yaml" else "a spec file"
    assert source.startswith(f'"""Tiny, generated by lenetc from {shown}.\n')
    assert "import os" not in source and "{{" not in source


def test_yaml_comments_and_other_sections_never_reach_the_source(tmp_path: Path) -> None:
    spec = (
        "# import os\nname: tiny  # {{ evil }}\ninput: {shape: [4]}\nlayers:\n"
        "  - {type: linear, out_features: 2}  # '''\ntrain: {dataset: {name: synthetic}}\n"
    )
    result, out = _run(tmp_path, spec)
    assert result.exit_code == 0, result.output
    source = out.read_text(encoding="utf-8")
    assert "import os" not in source and "evil" not in source and "synthetic" not in source


def test_a_value_that_is_not_a_literal_never_renders() -> None:
    """Defense in depth: rules hand over typed values, never source text. Should one ever hand
    over something else, render refuses it (ValueError, an internal error) rather than writing
    it; a string, even one that reads like code, is written as an inert string literal."""
    trace = check(load_spec(ROOT / "specs" / "lenet5.yaml"))
    first = trace.nodes[0]

    def forge(value: object) -> str:
        forged = dataclasses.replace(first.out, args={**first.out.args, "kernel_size": value})
        nodes = (dataclasses.replace(first, out=forged), *trace.nodes[1:])
        return render(dataclasses.replace(trace, nodes=nodes))

    for bad in ([1, 2], {"a": 1}, object(), float("nan"), (1.5, 2), None):
        with pytest.raises(ValueError, match="refusing to render"):
            forge(bad)
    for text in ("__import__('os').system('x')", "5); import os; (5", "f'{x}'"):
        source = forge(text)
        (call,) = [
            n
            for n in ast.walk(ast.parse(source))
            if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "Conv2d"
        ][:1]
        kernel = [k.value for k in call.keywords if k.arg == "kernel_size"][0]
        assert isinstance(kernel, ast.Constant) and kernel.value == text


# ---- the CLI writes what render returns --------------------------------------------------------


def test_cli_render_prints_and_writes_the_same_source(tmp_path: Path) -> None:
    spec = ROOT / "specs" / "lenet5.yaml"
    printed = CliRunner().invoke(main, ["render", str(spec)])
    assert printed.exit_code == 0
    out = tmp_path / "model.py"
    written = CliRunner().invoke(main, ["render", str(spec), "-o", str(out)])
    assert written.exit_code == 0
    assert printed.stdout == out.read_text(encoding="utf-8") == render_file(spec)


@pytest.mark.slow
def test_build_writes_the_rendered_source(lenet_build) -> None:
    assert lenet_build.model_py.read_text(encoding="utf-8") == render_file(
        ROOT / "specs" / "lenet5.yaml"
    )


def test_readme_section_shows_the_current_lenet5_source() -> None:
    section = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "```python\n" + render_file(ROOT / "specs" / "lenet5.yaml") + "```" in section


def test_readme_graph_section_shows_the_current_resnet8_source() -> None:
    """The README's residual block: its YAML is in specs/resnet8.yaml, its forward in the source."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Graphs: residual and branching networks") :]
    yaml_block = section[section.index("```yaml\n") + 8 :]
    yaml_block = yaml_block[: yaml_block.index("```")]
    spec = (ROOT / "specs" / "resnet8.yaml").read_text(encoding="utf-8").splitlines(True)
    assert yaml_block in "".join(line for line in spec if not line.startswith("  #"))
    code = section[section.index("```python\n") + 10 :]
    code = code[: code.index("```")]
    assert code in render_file(ROOT / "specs" / "resnet8.yaml")


# ---- the derivation trees: composed per axis, never re-read from text --------------------------


def test_derivations_compose_as_trees_per_axis() -> None:
    from lenetc.layers.conv import conv_axis
    from lenetc.layers.formula import Axis, compose, fmt, op
    from lenetc.layers.pool import pool_axis

    _, conv = conv_axis(32, 5, 1, 0, 1)
    _, pool = pool_axis(28, 2, 2, 0, 1, False)
    assert (conv.text, pool.text) == ("32 - 5 + 1 = 28", "28 / 2 = 14")
    assert compose([(conv,), (pool,)]) == "(32 - 5 + 1) / 2 = 14"
    _, strided = conv_axis(14, 3, 2, 1, 2)
    assert strided.text == "(14 + 2*1 - 2*(3 - 1) - 1) // 2 + 1 = 6"
    _, dropped = pool_axis(5, 2, 2, 0, 1, True)
    assert dropped.text == "ceil(5 / 2) = 3"
    assert compose([(conv,), "16 x 5 x 5 = 400"]) == "32 - 5 + 1 = 28, then 16 x 5 x 5 = 400"
    h, w = Axis(op("-", 8, 2), 6), Axis(op("-", 6, 2), 4)
    assert (
        compose([(h, w), (Axis(op("/", 6, 2), 3),)])
        == "h: (8 - 2) / 2 = 3; w: 6 - 2 = 4, then 6 / 2 = 3"
    )
    assert fmt(op("-", 9, op("-", 3, 1))) == "9 - (3 - 1)"
