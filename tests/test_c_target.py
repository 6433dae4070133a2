"""The C target: golden sources, a fixed style (clang-format), strict C99 under gcc and clang,
sanitizers, exact weights, and parity against torch for every spec and every layer kind.

Parity here runs the real c[cpu] adapter (runtimes/c.py, ctypes) on builds made without training:
model.py with seeded random weights (batch norm statistics too), weights.pt, and c/ written by
export/c_weights.py. The full pipeline's row in `lenetc verify` is tested on the session's real
LeNet-5 build. Each model is compiled once per session (per-user cache keyed by its sources).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from kinds import KINDS
from strategies import spec_yaml
from tools import require_tool

from lenetc.artifacts import BuildDir, load_module_class
from lenetc.check.shapes import check
from lenetc.cli import main
from lenetc.export.c_weights import export_c
from lenetc.layers import REGISTRY
from lenetc.runtimes.c import FAST_FLAGS, PORTABLE_FLAGS, CTarget, compile_library
from lenetc.spec.load import load_spec
from lenetc.targets.c import (
    FILES,
    ContractProblem,
    DatasetInfo,
    contract,
    hex_float,
    layer_views,
    plan_buffers,
    read_weights,
    render_c,
)
from lenetc.targets.c import fragments as contract_module
from lenetc.targets.templates import environment
from lenetc.targets.torch import render

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml")) + sorted((ROOT / "tests/specs").glob("*.yaml"))
STRICT = ("-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror")
BATCHES = (1, 3, 64)  # batch 1, an odd batch, a large one
LABELS = ("zero", 'say "two"?', "tri??=gr\\aph", "ünï")  # quotes, a trigraph, UTF-8


def _tool(name: str) -> str:
    # gcc is the one compiler a bare machine is promised; clang and clang-format come from make deps
    if name == "gcc":
        found = shutil.which(name)
        assert found, "gcc is not installed: the C target needs a C compiler (apt-get install gcc)"
        return found
    return require_tool(name)


def _make_build(spec_path: Path, root: Path) -> BuildDir:
    """A build folder without training: seeded random weights, then the C target from them."""
    spec = load_spec(spec_path)
    trace = check(spec)
    out = BuildDir(root / spec.name).create()
    out.spec.write_bytes(spec_path.read_bytes())
    out.model_py.write_text(render(trace), encoding="utf-8")
    torch.manual_seed(0)
    model = load_module_class(out.model_py, spec.class_name)()
    for m in model.modules():  # batch norm's statistics as training leaves them, not 0 and 1
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            if m.affine:
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.5, 0.5)
    torch.save(model.state_dict(), out.weights)
    classes = trace.output_shape[0]
    channels = spec.input_shape[0]
    labels = tuple(LABELS[i % len(LABELS)] + str(i) for i in range(classes))
    info = DatasetInfo("synthetic", (0.25,) * channels, (0.5,) * channels, labels)
    export_c(out, trace, info)
    return out


def _kind_spec(kind: str, folder: Path) -> Path:
    shape, layers = KINDS[kind].example
    path = folder / f"kind_{kind}.yaml"
    data = {"name": f"kind_{kind}", "input": {"shape": shape}, "layers": layers}
    path.write_text(spec_yaml(data), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def c_builds(tmp_path_factory) -> dict[str, BuildDir]:
    """Every spec of specs/ and tests/specs/, and every kind's example stack, as a C build."""
    root = tmp_path_factory.mktemp("c_builds")
    paths = {p.stem: p for p in SPECS}
    paths |= {f"kind_{k}": _kind_spec(k, root) for k in sorted(KINDS)}
    return {name: _make_build(path, root / "builds") for name, path in paths.items()}


def _reference(out: BuildDir, x: np.ndarray) -> np.ndarray:
    spec = load_spec(out.spec)
    model = load_module_class(out.model_py, spec.class_name)().double().eval()
    model.load_state_dict(torch.load(out.weights, weights_only=True))
    with torch.no_grad():
        return model(torch.from_numpy(x).double()).numpy()


# ---- parity: every spec, every kind --------------------------------------------------------


def test_every_spec_and_kind_matches_torch_at_every_batch(c_builds) -> None:
    """Same tolerances as verify (the spec's atol, rtol) against torch in float64."""
    with ThreadPoolExecutor(2) as pool:  # compile two at a time
        list(pool.map(lambda o: compile_library(o.c_dir, PORTABLE_FLAGS), c_builds.values()))
    failures = []
    for name, out in c_builds.items():
        spec = load_spec(out.spec)
        runtime = CTarget(out, spec)
        assert runtime.unavailable() is None
        runtime.load()
        rng = np.random.default_rng(0)
        for batch in BATCHES:
            x = rng.standard_normal((batch,) + spec.input_shape).astype(np.float32)
            (got,) = runtime.run(x)
            want = _reference(out, x)
            assert got.shape == want.shape, name
            excess = np.abs(got - want) - (spec.verify.atol + spec.verify.rtol * np.abs(want))
            if excess.max() > 0:
                failures.append(
                    f"{name} batch {batch}: max |c - torch| {np.abs(got - want).max():.2e}"
                )
    assert not failures, "\n".join(failures)


def test_the_fast_build_computes_the_same_bits_as_the_verified_one(c_builds) -> None:
    """-O3 -march=native (what bench times) against -O2 (what verify checks): with contraction
    off, vectorizing over independent outputs changes no sum, so not one bit may differ."""
    for name in ("lenet5", "vgg_small", "kitchen_sink"):
        out = c_builds[name]
        spec = load_spec(out.spec)
        x = np.random.default_rng(1).standard_normal((5,) + spec.input_shape).astype(np.float32)
        results = []
        for fast in (False, True):
            runtime = CTarget(out, spec)
            runtime.fast = fast
            runtime.load()
            results.append(runtime.run(x)[0])
        assert np.array_equal(results[0], results[1]), name


def test_weights_file_holds_weights_pt_exactly(c_builds) -> None:
    out = c_builds["vgg_small"]
    held = CTarget(out, load_spec(out.spec)).parameters()
    state = torch.load(out.weights, weights_only=True)
    floats = {k: v.numpy() for k, v in state.items() if v.is_floating_point()}
    assert set(held) == set(floats)
    for key, want in floats.items():
        assert held[key].shape == want.shape and np.array_equal(held[key], want), key


@pytest.mark.parametrize(
    "value, literal",
    [
        (0.0, "0x0p+0f"),
        (-0.0, "-0x0p+0f"),
        (1.0, "0x1p+0f"),
        (float(np.float32(0.1)), "0x1.99999ap-4f"),
        (float(np.float32(1e-45)), "0x1p-149f"),  # the smallest subnormal float32
        (float(np.finfo(np.float32).max), "0x1.fffffep+127f"),
    ],
)
def test_hex_float_literals_are_exact(value: float, literal: str) -> None:
    assert hex_float(value) == literal
    assert np.float32(float.fromhex(literal[:-1])) == np.float32(value)


# ---- strict C99, sanitizers ------------------------------------------------------------------


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_strict_c99_is_warning_free(c_builds, compiler: str, tmp_path: Path) -> None:
    cc = _tool(compiler)

    def compile_one(out: BuildDir) -> str:
        said = ""
        for source in ("model.c", "main.c"):
            done = subprocess.run(
                [cc, *STRICT, "-O2", "-c", source, "-o", os.devnull],
                cwd=out.c_dir,
                capture_output=True,
                text=True,
            )
            said += done.stderr
        return said.strip()

    with ThreadPoolExecutor(2) as pool:
        said = dict(zip(c_builds, pool.map(compile_one, c_builds.values())))
    problems = {name: text.splitlines()[0] for name, text in said.items() if text}
    assert not problems, json.dumps(problems, indent=1)


@pytest.mark.parametrize("name", ["lenet5", "kitchen_sink"])
def test_example_program_runs_clean_under_asan_and_ubsan(c_builds, name: str, tmp_path) -> None:
    """main.c + model.c with -fsanitize=address,undefined: three samples, normalized and raw;
    each printed class is torch's argmax."""
    out = c_builds[name]
    spec = load_spec(out.spec)
    program = tmp_path / "model"
    subprocess.run(
        [_tool("gcc"), *STRICT, "-O1", "-g", "-fsanitize=address,undefined"]
        + ["-fno-sanitize-recover=all", "-o", str(program), "main.c", "model.c", "-lm"],
        cwd=out.c_dir,
        check=True,
        capture_output=True,
    )
    x = np.random.default_rng(2).standard_normal((3,) + spec.input_shape).astype(np.float32)
    want = _reference(out, x).reshape(3, -1).argmax(axis=1)
    (tmp_path / "x.f32").write_bytes(x.tobytes())
    (tmp_path / "raw.f32").write_bytes((x * 0.5 + 0.25).astype(np.float32).tobytes())
    for args in (["x.f32"], ["--raw", "raw.f32"]):
        done = subprocess.run(
            [str(program), *[str(tmp_path / a) if a.endswith(".f32") else a for a in args]],
            capture_output=True,
            text=True,
            env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1"),
        )
        assert done.returncode == 0 and not done.stderr, done.stderr[-2000:]
        got = [int(m) for m in re.findall(r"class (\d+)", done.stdout)]
        assert got == list(want), done.stdout


def test_labels_and_normalization_reach_c_exactly(c_builds, tmp_path: Path) -> None:
    """model.h's labels are C strings holding the UTF-8 bytes (quotes, `??=` and all)."""
    out = c_builds["lenet5"]
    probe = tmp_path / "probe.c"
    probe.write_text(
        '#include <stdio.h>\n#include "model.h"\n'
        "int main(void) {\n"
        "    static const char *const labels[] = LENET5_LABELS;\n"
        "    static const float mean[] = LENET5_MEAN;\n"
        "    for (int i = 0; i < LENET5_OUTPUT_SIZE; i++) {\n"
        '        printf("%s\\n", labels[i]);\n'
        "    }\n"
        '    printf("%a\\n", (double)mean[0]);\n'
        "    return 0;\n}\n",
        encoding="utf-8",
    )
    program = tmp_path / "probe"
    subprocess.run(
        [_tool("gcc"), *STRICT, "-I", str(out.c_dir), "-o", str(program), str(probe)], check=True
    )
    lines = subprocess.run([str(program)], capture_output=True, check=True).stdout.decode()
    expected = [LABELS[i % len(LABELS)] + str(i) for i in range(10)]
    assert lines.splitlines() == expected + ["0x1p-2"]


def test_makefile_builds_the_example_program(c_builds, tmp_path: Path) -> None:
    folder = tmp_path / "c"
    shutil.copytree(c_builds["lenet5"].c_dir, folder)
    done = subprocess.run(["make", "-s"], cwd=folder, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (folder / "lenet5").is_file()
    done = subprocess.run(["make", "-s", "liblenet5.so"], cwd=folder, capture_output=True)
    assert done.returncode == 0 and (folder / "liblenet5.so").is_file()


# ---- generated sources: golden, deterministic, formatted, readable -----------------------------


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_golden_c_sources(path: Path, golden) -> None:
    files = render_c(check(load_spec(path)))
    for name in ("model.h", "model.c"):
        golden.check(f"c/{path.stem}/{name}", files[name])
    if path.stem == "lenet5":
        golden.check("c/lenet5/main.c", files["main.c"])
        golden.check("c/lenet5/Makefile", files["Makefile"])


def test_render_c_is_deterministic_and_imports_no_torch() -> None:
    script = (
        "import json, sys;"
        "from lenetc.targets.c import render_c; from lenetc.check.shapes import check;"
        "from lenetc.spec.load import load_spec;"
        "out = {p: render_c(check(load_spec(p))) for p in sys.argv[1:]};"
        "assert 'torch' not in sys.modules, 'render imported torch';"
        "print(json.dumps(out))"
    )
    runs = []
    for seed in ("0", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(ROOT))
        done = subprocess.run(
            [sys.executable, "-c", script, *map(str, SPECS)], env=env, capture_output=True
        )
        assert done.returncode == 0, done.stderr
        runs.append(done.stdout)
    assert runs[0] == runs[1]
    assert json.loads(runs[0]) == {str(p): render_c(check(load_spec(p))) for p in SPECS}


def test_sources_are_clang_formatted_with_the_committed_style(c_builds) -> None:
    """The committed .clang-format leaves every generated model.h, model.c, main.c unchanged."""
    tool = _tool("clang-format")
    style = f"--style=file:{ROOT / '.clang-format'}"
    for name, out in c_builds.items():
        for file in ("model.h", "model.c", "main.c"):
            path = out.c_dir / file
            done = subprocess.run([tool, style, str(path)], capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            assert done.stdout == path.read_text(encoding="utf-8"), f"{name}/{file}"


def test_lenet5_model_c_reads_like_a_person_wrote_it() -> None:
    files = render_c(check(load_spec(ROOT / "specs" / "lenet5.yaml")))
    source = files["model.c"]
    kernels = re.findall(r"^LENETC_KERNEL void (\w+)\(", source, re.M)
    assert kernels == ["conv2d", "relu", "max_pool2d", "linear"]  # once per kind, in first use
    assert "/* conv2 (conv2d, spec line 11): (16, 10, 10): 14 - 5 + 1 = 10 */" in source
    assert "conv2d(buf1, buf0, conv2_weight, conv2_bias, NULL, (Chw){6, 14, 14}" in source
    assert (
        "relu(buf0, buf0, 4704);" in source
        and "linear(buf1, y, fc3_weight, fc3_bias, 84, 10);" in source
    )
    assert "/* flatten1 (flatten): (400): 16 x 5 x 5 = 400, the same memory */" in source
    assert "void lenet5_forward(const float *input, float *output, int batch) {" in source
    assert "malloc" not in source and "<math.h>" not in source  # relu needs no libm
    assert "static float buf0[4704];" in source and "static float buf1[1176];" in source
    assert len(source.splitlines()) < 250  # readable in one sitting
    header = files["model.h"]
    assert "#define LENET5_INPUT_SIZE 1024" in header
    assert "void lenet5_forward(const float *input, float *output, int batch);" in header


def test_every_kernel_appears_once_and_lines_fit_the_column_limit(c_builds) -> None:
    """One kernel per kind, however often the model uses it; in model.c .clang-format's 100
    columns hold for comments too (clang-format does not reflow them)."""
    for name, out in c_builds.items():
        source = (out.c_dir / "model.c").read_text(encoding="utf-8")
        kernels = re.findall(r"^LENETC_KERNEL void (\w+)\(", source, re.M)
        assert len(kernels) == len(set(kernels)), name
        assert max(len(line) for line in source.splitlines()) <= 100, name


def test_buffers_are_reused_by_liveness(c_builds) -> None:
    source = (c_builds["vgg_small"].c_dir / "model.c").read_text(encoding="utf-8")
    assert re.findall(r"^static float (buf\d)\[", source, re.M) == ["buf0", "buf1"]
    assert "batch_norm2d(buf0, buf0, bn1_weight" in source  # in place: its input's last reader


def test_the_buffer_plan_counts_every_static_float_and_every_weight(c_builds) -> None:
    """arena_bytes = the static float arrays of model.c; weight_bytes = model_weights.h's."""
    for name, out in c_builds.items():
        trace = check(load_spec(out.spec))
        plan = plan_buffers(trace, layer_views(trace))
        source = (out.c_dir / "model.c").read_text(encoding="utf-8")
        arena = sum(int(n) for n in re.findall(r"static float \w+\[(\d+)\];", source))
        assert plan.arena_bytes == 4 * arena, name
        stored = read_weights((out.c_dir / "model_weights.h").read_text(encoding="utf-8"))
        assert plan.weight_bytes == 4 * sum(len(v[-1]) for v in stored.values()), name
        final = plan.where[trace.nodes[-1].node.name]
        assert plan.final == final and (final == "y") == ("y[i] = buf" not in source), name


def test_every_kind_has_a_valid_c_fragment() -> None:
    for kind in REGISTRY:
        fragment = contract(kind)
        assert fragment.alias == (fragment.kernel is None) == (fragment.call is None), kind


MACROS = "{% macro kernel(k) %}{% endmacro %}{% macro call(l, a) %}{% endmacro %}"


@pytest.mark.parametrize(
    ("source", "said"),
    [
        (
            "{% set inplace = true %}" + MACROS,
            "unknown setting 'inplace' (did you mean 'in_place'?)",
        ),
        (
            "{% set in_place = 1 %}" + MACROS,
            "'in_place' must be true or false, found 1",
        ),
        (
            '{% set layout = {"weight": [1, 1]} %}' + MACROS,
            "a permutation per weight",
        ),
        ("{% set alias = true %}" + MACROS, "an alias shares its input's memory: it has no kernel"),
        ("{% set in_place = true %}{% macro call(l, a) %}{% endmacro %}", "no macro kernel()"),
        ('{% set pad_to_lanes = ["bias"] %}' + MACROS, "not in layout"),
    ],
)
def test_a_fragment_breaking_the_contract_is_named(monkeypatch, source: str, said: str) -> None:
    monkeypatch.setattr(
        contract_module, "fragment", lambda target, kind: environment().from_string(source).module
    )
    with pytest.raises(ContractProblem) as caught:
        contract_module.contract.__wrapped__("relu")
    assert str(caught.value).startswith("templates/c/layers/relu.j2: ") and said in str(
        caught.value
    )


def test_render_target_c_on_the_command_line(tmp_path: Path) -> None:
    spec = ROOT / "specs" / "lenet5.yaml"
    printed = CliRunner().invoke(main, ["render", str(spec), "--target", "c"])
    assert printed.exit_code == 0, printed.output
    written = CliRunner().invoke(main, ["render", str(spec), "--target", "c", "-o", str(tmp_path)])
    assert written.exit_code == 0, written.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES)
    assert printed.stdout == (tmp_path / "model.c").read_text(encoding="utf-8")


# ---- the real build: c/ in the folder, a row of verify, a nudged weight fails ----------------


@pytest.mark.slow
def test_build_writes_c_and_verify_has_a_passing_c_row(lenet_build) -> None:
    from lenetc.verify.parity import verify_build

    assert sorted(p.name for p in lenet_build.c_dir.iterdir()) == sorted(
        FILES + ("model_weights.h",)
    )
    header = (lenet_build.c_dir / "model.h").read_text(encoding="utf-8")
    assert "#define LENET5_LABELS {" in header and "#define LENET5_MEAN {" in header
    report = verify_build(lenet_build.root, write=False)
    (row,) = [r for r in report.runtimes if r.runtime == "c[cpu]"]
    assert row.artifact == "c/model.c" and row.status == "PASS", row.reason
    assert row.outputs[0].max_abs < 1e-4 and row.outputs[0].argmax_agreement == 1.0


@pytest.mark.slow
def test_a_nudged_weight_in_the_c_file_fails_verify_and_is_named(lenet_build, tmp_path) -> None:
    from lenetc.verify.parity import verify_build

    build = tmp_path / "lenet5"
    shutil.copytree(lenet_build.root, build)
    weights = build / "c" / "model_weights.h"
    text = weights.read_text(encoding="utf-8")
    key, (_, _, _, values) = next(iter(read_weights(text).items()))
    first = hex_float(float(np.float32(values[0])))
    nudged = hex_float(float(np.float32(values[0] + 0.05)))
    at = text.index("static const float conv1_weight")
    weights.write_text(text[:at] + text[at:].replace(first, nudged, 1), encoding="utf-8")
    report = verify_build(build, write=False)
    (row,) = [r for r in report.runtimes if r.runtime == "c[cpu]"]
    assert key == "conv1.weight" and row.status == "FAIL"
    assert row.outputs[0].max_abs > 1e-4
    assert row.divergence is not None and row.divergence.layer == "conv1"
    assert any("conv1.weight differs from weights.pt" in p for p in row.divergence.parameters)


@pytest.mark.slow
def test_bench_times_every_runtime_and_writes_bench_json(lenet_build, tmp_path) -> None:
    build = tmp_path / "lenet5"
    shutil.copytree(lenet_build.root, build)
    result = CliRunner().invoke(
        main, ["bench", str(build), "--batch", "1", "--batch", "8", "--repeats", "3"]
    )
    assert result.exit_code == 0, result.output
    table = result.stdout
    assert "1 thread(s) each" in table
    for runtime in ("torch[cpu]", "torchscript[cpu]", "onnxruntime[cpu]", "c[cpu]"):
        assert re.search(rf"^{re.escape(runtime)} .* us \(\d+\.\d\dx\)", table, re.M), runtime
    assert re.search(r"^torch\[cpu\] .*\(1\.00x\)", table, re.M)
    data = json.loads((build / "bench.json").read_text())
    rows = {r["runtime"]: r for r in data["runtimes"]}
    assert data["threads"] == 1 and data["batches"] == [1, 8]
    assert rows["torch[cpu]"]["ratios"] == {"1": 1.0, "8": 1.0}
    c = rows["c[cpu]"]
    assert c["status"] == "ok" and "-O3 -march=native" in c["built_with"]
    assert [t["batch"] for t in c["timings"]] == [1, 8] and c["timings"][0]["seconds"] > 0
    assert "cuda" not in json.dumps(list(rows))  # CPU runtimes only
    node = rows["onnxruntime-node"]  # another program per call: its start-up is no latency
    assert node["status"] == "not timed" and not node["timings"], node


def test_flags_never_include_fast_math() -> None:
    assert not any("fast-math" in f for f in PORTABLE_FLAGS + FAST_FLAGS)


# ---- the README ---------------------------------------------------------------------------------


def _readme_block(after: str, language: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"```{language}\n", text.index(after)) + len(language) + 4
    return text[start : text.index("```", start)]


def test_readme_shows_the_current_lenet5_forward_function() -> None:
    source = render_c(check(load_spec(ROOT / "specs" / "lenet5.yaml")))["model.c"]
    shown = _readme_block("The forward function of LeNet-5", "c")
    assert shown in source and shown.startswith("void lenet5_forward(")


def test_readme_embedding_example_compiles_and_runs(c_builds, tmp_path: Path) -> None:
    out = c_builds["lenet5"]
    app = tmp_path / "app.c"
    app.write_text(_readme_block("### Embedding c/ in a C program", "c"), encoding="utf-8")
    program = tmp_path / "app"
    subprocess.run(
        [_tool("gcc"), *STRICT, "-O2", "-ffp-contract=off", "-I", str(out.c_dir)]
        + ["-o", str(program), str(app), str(out.c_dir / "model.c"), "-lm"],
        check=True,
    )
    said = subprocess.run([str(program)], capture_output=True, check=True).stdout.decode()
    labels = [LABELS[i % len(LABELS)] + str(i) for i in range(10)]
    assert said.strip() in labels


def test_layer_names_that_c_reserves_are_renamed_and_still_match_torch(tmp_path: Path) -> None:
    """Valid spec names that C, <math.h> or model.c itself already uses (a keyword, a libm
    function, a buffer, a macro-like name, another layer's weight array, a kernel) get `_layer`
    appended where they name C things: the layer's weight arrays."""
    spec = tmp_path / "clash.yaml"
    data = {
        "name": "clash",
        "input": {"shape": [2, 6, 6]},
        "layers": [
            {"type": "conv2d", "name": "int", "out_channels": 3, "kernel_size": 3},
            {"type": "tanh", "name": "expf"},
            {"type": "conv2d", "name": "buf0", "out_channels": 2, "kernel_size": 2},
            {"type": "relu", "name": "FLT_MAX"},
            {"type": "flatten"},
            {"type": "linear", "name": "int_weight", "out_features": 4},
            {"type": "sigmoid", "name": "main"},
            {"type": "linear", "name": "linear", "out_features": 3},
        ],
    }
    spec.write_text(spec_yaml(data), encoding="utf-8")
    out = _make_build(spec, tmp_path / "builds")
    source = (out.c_dir / "model.c").read_text(encoding="utf-8")
    for array in ("int_layer_weight", "buf0_layer_bias", "int_weight_layer_weight"):
        assert f"{array}," in source, array
    assert "linear(buf0, y, linear_weight, linear_bias, 4, 3);" in source
    runtime = CTarget(out, load_spec(out.spec))
    runtime.load()
    x = np.random.default_rng(3).standard_normal((3, 2, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(runtime.run(x)[0], _reference(out, x), rtol=1e-4, atol=1e-5)


def test_without_a_compiler_the_c_row_is_unavailable_and_says_how_to_install(
    c_builds, monkeypatch
) -> None:
    monkeypatch.setenv("CC", "no-such-compiler-here")
    out = c_builds["lenet5"]
    why = CTarget(out, load_spec(out.spec)).unavailable()
    assert why is not None and "no C compiler found" in why and "apt-get install gcc" in why
