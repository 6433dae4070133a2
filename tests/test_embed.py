"""Embedding runtimes: every registered runtime passes on the LeNet build and on every spec in
specs/ (batch 1, 3 and 64), a 1e-3 nudge fails every row that reads the nudged artifact and still
names conv2, every example program reproduces io.npz, and a runtime that crashes, hangs or cannot
load the model fails its own row only, leaving nothing running.

Outside CI a runtime that is not installed skips its tests with the install command; in CI
(CI=true, where `.ci/run` installs everything) it fails them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import numpy_helper
from tools import unavailable

from lenetc.artifacts import BuildDir
from lenetc.build import BuildOptions, build
from lenetc.cli import main
from lenetc.errors import EXIT_INTEGRITY, EXIT_PARITY, EXIT_SPEC, UsageError
from lenetc.runtimes import REGISTRY, plan
from lenetc.runtimes.process import examples_dir, node_modules
from lenetc.runtimes.registry import RuntimeKind, register
from lenetc.spec.load import load_spec
from lenetc.verify.parity import verify_build

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))  # top level only: published/ nets are check-only

# One row per registered runtime: its rows in the parity table, and whether a failing row names
# the diverging layer from its own intermediate outputs (else layer by layer or parameters).
RUNTIMES = {
    "torch": (["torch[cpu]"], True),
    "torchscript": (["torchscript[cpu]"], False),
    "torch.export": (["torch.export[cpu]"], True),
    "onnxruntime": (["onnxruntime[cpu]"], True),
    "onnx.reference": (["onnx.reference"], True),
    "c": (["c[cpu]"], False),
    "qemu": (["c[cortex-m4,qemu]", "c[cortex-m3,qemu]"], False),
    "tract": (["tract"], True),
    "openvino": (["openvino[cpu]", "openvino[cpu,f32]"], True),
    "opencv-dnn": (["opencv-dnn"], True),
    "onnxruntime-node": (["onnxruntime-node"], True),
    "onnxruntime-web": (["onnxruntime-web[node]", "onnxruntime-web[chromium]"], True),
    "libtorch": (["libtorch[c++]"], False),
    "executorch": (["executorch[xnnpack]"], False),
    "litert": (["litert", "litert[builtin]"], False),
}
EMBEDDERS = ("tract", "openvino", "opencv-dnn", "onnxruntime-node", "onnxruntime-web", "libtorch")
MOBILE = ("executorch", "litert")  # model.pte and model.tflite, not model.onnx


def need(build: BuildDir, *names: str) -> None:
    """Skip (outside CI) or fail (in CI) when a runtime cannot run here, saying why."""
    spec = load_spec(build.spec)
    for row in plan(build, spec, ("cpu",), names):
        why = row.unavailable()
        if why is not None:
            unavailable(f"{row.name} unavailable here: {why}")


def _rows(report) -> dict:
    return {r.runtime: r for r in report.runtimes}


def _precision_ok(row) -> bool:
    """openvino[cpu] may run in bf16 by OpenVINO's own default: then a WARN, never a PASS lie."""
    return row.status == "PASS" or (row.runtime == "openvino[cpu]" and row.status == "WARN")


# -- the registry -----------------------------------------------------------------------------


def test_registering_a_name_twice_is_an_error():
    with pytest.raises(ValueError, match="'tract' is registered twice"):
        register(RuntimeKind("tract", 1, lambda t: []))


def test_every_registered_runtime_has_a_test_row_and_a_readme_row():
    readme = (ROOT / "README.md").read_text()
    assert set(REGISTRY) == set(RUNTIMES), "add the runtime to RUNTIMES above"
    for name in REGISTRY:
        assert re.search(rf"^\| `{re.escape(name)}[`\[]", readme, re.M), f"README row: {name}"


def test_rows_of_each_runtime_are_the_ones_listed(lenet_build):
    spec = load_spec(lenet_build.spec)
    rows = plan(lenet_build, spec, ("cpu",))
    assert [r.name for r in rows] == [n for names, _ in RUNTIMES.values() for n in names]
    assert all(r.kind in REGISTRY for r in rows)


# -- honest builds pass ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def lenet_report(lenet_build, tmp_path_factory):
    root = shutil.copytree(lenet_build.root, tmp_path_factory.mktemp("embed") / "lenet5")
    need(BuildDir(root), *REGISTRY)
    result = CliRunner().invoke(main, ["verify", str(root)])
    return result, json.loads((root / "verify.json").read_text())


def test_lenet_passes_in_every_runtime(lenet_report):
    result, report = lenet_report
    assert result.exit_code == 0, result.output
    assert report["batch_sizes"] == [1, 3, 64]
    rows = {r["runtime"]: r for r in report["runtimes"]}
    for names, _ in RUNTIMES.values():
        for name in names:
            row = rows[name]
            (out,) = row["outputs"]
            assert out["elements"] == 2 * (1 + 3 + 64) * 10, name
            if name == "openvino[cpu]" and row["status"] == "WARN":  # bf16: shown, explained
                assert 1e-5 < out["max_abs"] < 0.5 and "bf16" in row["reason"]
                assert "INFERENCE_PRECISION_HINT" in row["reason"]
                continue
            assert row["status"] == "PASS", (name, row["reason"])
            assert 0 < out["max_abs"] < 1e-5, (name, out["max_abs"])
            assert out["argmax_agreement"] == 1.0
    rows_listed = sum(len(names) for names, _ in RUNTIMES.values())
    warned = sum(r["status"] == "WARN" for r in report["runtimes"])
    cuda = sum(r["device"] == "cuda" for r in report["runtimes"])
    passed = f"{rows_listed - warned} pass, 0 fail, " + (f"{warned} warn, " if warned else "")
    assert f"verify: PASS ({passed}{cuda} unavailable)" in result.output


@pytest.fixture(scope="session")
def spec_builds(tmp_path_factory, lenet_build):
    """Each top-level spec built once (1 epoch; the build itself verifies ONNX Runtime only);
    lenet5 is the session's shared build."""
    out = tmp_path_factory.mktemp("spec_builds")
    cache: dict[str, BuildDir] = {"lenet5.yaml": lenet_build}

    def get(spec: Path) -> BuildDir:
        if spec.name not in cache:
            opts = BuildOptions(out=out, epochs=1, quiet=True, runtimes=("onnxruntime[cpu]",))
            cache[spec.name] = BuildDir(build(spec, opts).folder)
        return cache[spec.name]

    return get


@pytest.mark.parametrize("spec", SPECS, ids=[s.stem for s in SPECS])
def test_every_embedding_runtime_passes_on_every_spec(spec, spec_builds):
    folder = spec_builds(spec)
    need(folder, *EMBEDDERS, *MOBILE)
    report = verify_build(folder.root, runtimes=EMBEDDERS + MOBILE, write=False)
    sizes = report.batch_sizes
    assert 1 in sizes and any(b % 2 and b > 1 for b in sizes) and max(sizes) >= 32, sizes
    rows = _rows(report)
    assert len(rows) == sum(len(RUNTIMES[k][0]) for k in EMBEDDERS + MOBILE)
    for row in rows.values():
        assert _precision_ok(row), (row.runtime, row.reason, report.failures())
        assert row.outputs[0].elements > 0


# -- a nudged weight fails every row that reads it -------------------------------------------


def test_a_nudged_weight_fails_every_row_and_names_conv2(lenet_build, tmp_path):
    folder = BuildDir(shutil.copytree(lenet_build.root, tmp_path / "lenet5"))
    need(folder, *REGISTRY)
    where = (7, 3, 2, 2)
    model = onnx.load(str(folder.onnx))
    for tensor in model.graph.initializer:
        if tensor.name == "conv2.weight":
            value = numpy_helper.to_array(tensor).copy()
            value[where] += 1e-3
            tensor.CopyFrom(numpy_helper.from_array(value, tensor.name))
    onnx.save(model, str(folder.onnx))
    scripted = torch.jit.load(str(folder.torchscript))
    with torch.no_grad():
        scripted.conv2.weight[where] += 1e-3
    torch.jit.save(scripted, str(folder.torchscript))

    report = verify_build(folder.root, write=False)
    assert not report.passed
    rows = _rows(report)
    for kind, (names, observes) in RUNTIMES.items():
        for name in names:
            row = rows[name]
            # they read model.py, model.pt2, c/model_weights.h (host and Cortex-M C), model.pte,
            # model.tflite: untouched here (test_c_target.py nudges the C weights file,
            # test_mobile.py the mobile files)
            if kind in ("torch", "torch.export", "c", "qemu", *MOBILE):
                assert row.status == "PASS", name
                continue
            assert not row.outputs[0].passed and row.outputs[0].max_abs > 1e-5, name
            if row.status == "WARN":  # openvino[cpu] in bf16: its noise hides 1e-3 anyway
                continue
            assert row.status == "FAIL", name
            div = row.divergence
            assert (div.layer, div.line) == ("conv2", 11), (name, div)
            expected = "intermediate outputs" if observes else "layer by layer"
            assert div.method == expected, (name, div.method, div.detail)
            assert "parameter conv2.weight differs" in div.describe("spec.yaml"), name


# -- the example programs reproduce io.npz ----------------------------------------------------


def _example_commands() -> dict[str, tuple[list[str], dict, tuple[str, ...]]]:
    ex = examples_dir()
    py = sys.executable
    node_env = {"NODE_PATH": str(node_modules())}
    return {
        "python-onnxruntime": ([py, str(ex / "python" / "classify_onnxruntime.py")], {}, ()),
        "python-tract": ([py, str(ex / "python" / "classify_tract.py")], {}, ("tract",)),
        "python-openvino": ([py, str(ex / "python" / "classify_openvino.py")], {}, ("openvino",)),
        "python-opencv": ([py, str(ex / "python" / "classify_opencv.py")], {}, ("opencv-dnn",)),
        "python-executorch": (
            [py, str(ex / "python" / "classify_executorch.py")],
            {},
            ("executorch",),
        ),
        "python-litert": ([py, str(ex / "python" / "classify_litert.py")], {}, ("litert",)),
        "node": (["node", str(ex / "node" / "classify.js")], node_env, ("onnxruntime-node",)),
        "node-web": (
            ["node", str(ex / "node" / "classify.js")],
            {**node_env, "LENETC_ORT": "onnxruntime-web"},
            ("onnxruntime-web",),
        ),
        "browser": (
            ["node", str(ex / "browser" / "run_headless.js")],
            node_env,
            ("onnxruntime-web",),
        ),
        "cpp": ([], {}, ("libtorch",)),
    }


@pytest.mark.parametrize(
    "example",
    [
        "python-onnxruntime",
        "python-tract",
        "python-openvino",
        "python-opencv",
        "python-executorch",
        "python-litert",
        "node",
        "node-web",
        "browser",
        "cpp",
    ],
)
def test_each_example_program_reproduces_io_npz(example, lenet_build):
    cmd, env, runtimes = _example_commands()[example]
    need(lenet_build, *runtimes)
    if example == "cpp":
        from lenetc.runtimes.libtorch import program

        cmd = [str(program())]  # the cached compile of examples/cpp/classify.cpp
    done = subprocess.run(
        [*cmd, str(lenet_build.root)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr
    golden = np.load(lenet_build.io_npz)
    labels = json.loads(load_meta(lenet_build)["class_labels"])
    printed = re.findall(r"^sample (\d+): (\S+)$", done.stdout, re.M)
    assert [int(i) for i, _ in printed] == list(range(len(golden["output"])))
    assert [c for _, c in printed] == [labels[i] for i in golden["output"].argmax(axis=1)]
    (diff,) = re.findall(
        r"max \|logits - (?:output_0\.pb|io\.npz output)\| = (\S+)$", done.stdout, re.M
    )
    spec = load_spec(lenet_build.spec)
    bound = spec.verify.atol + spec.verify.rtol * float(np.abs(golden["output"]).max())
    assert float(diff) <= bound, (example, diff, bound)


def load_meta(build: BuildDir) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(build.onnx)).metadata_props}


# -- bad cases: crash, hang, unloadable model ---------------------------------------------------


def test_an_unloadable_model_fails_each_onnx_row_with_its_runtimes_first_line(
    lenet_build, tmp_path
):
    folder = BuildDir(shutil.copytree(lenet_build.root, tmp_path / "lenet5"))
    need(folder, *EMBEDDERS)
    folder.onnx.write_bytes(folder.onnx.read_bytes()[:5000])  # truncated
    report = verify_build(folder.root, write=False)
    rows = _rows(report)
    for name in ("tract", "openvino[cpu]", "openvino[cpu,f32]", "opencv-dnn", "onnxruntime-node"):
        assert rows[name].status == "FAIL" and not rows[name].outputs, name
        assert "\n" not in rows[name].reason and rows[name].reason, name
    assert rows["onnxruntime-web[chromium]"].status == "FAIL"
    for name in ("torch[cpu]", "torchscript[cpu]", "libtorch[c++]"):
        assert rows[name].status == "PASS", name


def _ours(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_a_hanging_or_crashing_runtime_fails_its_row_and_leaves_nothing_running(
    lenet_build, monkeypatch
):
    from lenetc.runtimes import onnxruntime_node, onnxruntime_web

    need(lenet_build, "onnxruntime-node", "onnxruntime-web")
    # hangs: a child in the same group, and one that left it (as a browser's helpers do)
    hang = "sleep 61.25 & setsid sleep 61.75 & sleep 61.5; wait"
    monkeypatch.setattr(onnxruntime_node.OnnxRuntimeNode, "timeout", 1.0)
    monkeypatch.setattr(
        onnxruntime_node.OnnxRuntimeNode, "command", lambda self, c, m: (["sh", "-c", hang], {})
    )
    crash = "echo 'Error: wasm backend crashed' >&2; echo detail >&2; kill -SEGV $$"
    monkeypatch.setattr(
        onnxruntime_web.OnnxRuntimeWebChromium,
        "command",
        lambda self, c, m: (["sh", "-c", crash], {}),
    )
    report = verify_build(
        lenet_build.root,
        runtimes=("onnxruntime-node", "onnxruntime-web", "onnxruntime"),
        write=False,
    )
    rows = _rows(report)
    assert rows["onnxruntime-node"].status == "FAIL"
    assert rows["onnxruntime-node"].reason == "sh did not finish within 1 s"
    # onnxruntime-web[node] is a subclass of the node row: it hung too
    assert rows["onnxruntime-web[chromium]"].status == "FAIL"
    assert rows["onnxruntime-web[chromium]"].reason == "sh failed: Error: wasm backend crashed"
    assert rows["onnxruntime[cpu]"].status == "PASS"
    assert _ours("61.25") == [] and _ours("61.75") == [] and _ours("61.5") == []


# -- choosing runtimes -------------------------------------------------------------------------


def test_runtime_flag_selects_rows_and_an_unknown_name_is_exit_2(lenet_build, tmp_path):
    folder = shutil.copytree(lenet_build.root, tmp_path / "lenet5")
    result = CliRunner().invoke(
        main, ["verify", str(folder), "--runtime", "tract", "--runtime", "onnxruntime[cpu]"]
    )
    report = json.loads((folder / "verify.json").read_text())
    assert [r["runtime"] for r in report["runtimes"]] == ["onnxruntime[cpu]", "tract"]
    assert result.exit_code == 0 or "tract: unavailable" in result.output
    bad = CliRunner().invoke(main, ["verify", str(folder), "--runtime", "opnevino"])
    assert bad.exit_code == EXIT_SPEC
    assert "--runtime: unknown runtime 'opnevino'; did you mean 'openvino'?" in bad.output


def test_verify_runtimes_in_the_spec_selects_and_is_checked(lenet_build, tmp_path):
    folder = BuildDir(shutil.copytree(lenet_build.root, tmp_path / "lenet5"))
    text = folder.spec.read_text()
    folder.spec.write_text(text.replace("  providers: [cpu, cuda]", "  runtimes: [onnx.reference]"))
    report = verify_build(folder.root, write=False)
    assert [r.runtime for r in report.runtimes] == ["onnx.reference"]
    folder.spec.write_text(text.replace("  providers: [cpu, cuda]", "  runtimes: [trakt]"))
    with pytest.raises(UsageError) as refused:
        verify_build(folder.root, write=False)
    assert "spec.yaml:36 verify.runtimes: unknown runtime 'trakt'; did you mean 'tract'?" in str(
        refused.value
    )
    # from the command line, an edited spec.yaml is first of all a changed build folder
    result = CliRunner().invoke(main, ["verify", str(folder.root)])
    assert result.exit_code == EXIT_INTEGRITY, result.output


def test_a_missing_runtime_is_unavailable_required_fails_and_ci_fails(
    lenet_build, tmp_path, monkeypatch
):
    folder = str(shutil.copytree(lenet_build.root, tmp_path / "lenet5"))
    monkeypatch.setenv("LENETC_NODE_MODULES", str(tmp_path / "nowhere"))
    monkeypatch.delenv("CI", raising=False)
    args = ["verify", folder, "--runtime", "onnxruntime-node", "--runtime", "onnxruntime[cpu]"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "install: make deps" not in result.output  # one line, pointing to --explain:
    assert (
        f"  1 runtime unavailable here: onnxruntime-node; `lenetc verify --explain {folder}` "
        in (result.output)
    )
    result = CliRunner().invoke(main, [*args, "--explain"])
    assert result.exit_code == 0, result.output
    assert "onnxruntime-node: unavailable: the npm package onnxruntime-node is not in " in (
        result.output
    )
    assert "install: make deps" in result.output and "unavailable here:" not in result.output
    result = CliRunner().invoke(main, [*args, "--require", "onnxruntime-node"])
    assert result.exit_code == EXIT_PARITY
    assert "onnxruntime-node (model.onnx): required (--require onnxruntime-node) but " in (
        result.output
    )
    monkeypatch.setenv("CI", "true")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == EXIT_PARITY
    assert "onnxruntime-node (model.onnx): CI=true, where every runtime is installed, but " in (
        result.output
    )


def test_verify_runtimes_must_be_names_and_build_takes_the_flags(tmp_path):
    spec = (ROOT / "specs" / "lenet5.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(spec.replace("  providers: [cpu, cuda]", "  runtimes: [tract, 5]"))
    result = CliRunner().invoke(main, ["check", str(bad)])
    assert result.exit_code == EXIT_SPEC
    assert "bad.yaml:36: verify.runtimes: expected runtime names such as tract" in result.output
    assert load_spec(ROOT / "specs" / "lenet5.yaml").verify.runtimes == ()
    help_text = CliRunner().invoke(main, ["build", "--help"]).output
    assert "--runtime NAME" in help_text and "--require NAME" in help_text
