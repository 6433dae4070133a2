"""verify: an honest build passes on every runtime; a mutated artifact fails (exit 3) naming its
runtime, its output, the numbers and the first diverging layer with its YAML line; a provider that
silently falls back to the CPU fails; --require turns "unavailable" into a failure."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import numpy_helper

from lenetc.artifacts import BuildDir
from lenetc.cli import main
from lenetc.errors import EXIT_INTEGRITY, EXIT_PARITY
from lenetc.export.manifest import write_manifest
from lenetc.spec.load import load_spec
from lenetc.verify.parity import make_cases, reference_model, verify_build

pytestmark = pytest.mark.slow

CPU_RUNTIMES = [
    "torch[cpu]",
    "torchscript[cpu]",
    "torch.export[cpu]",
    "onnxruntime[cpu]",
    "onnx.reference",
]
NO_CUDA = not torch.cuda.is_available()
# The runtimes these tests examine; the embedding ones (tract, OpenVINO, Node, Chromium, libtorch)
# are proven in test_embed.py, and left out here to keep each verify call fast.
CORE = ("torch", "torchscript", "torch.export", "onnxruntime", "onnx.reference")
ONLY_CORE = [arg for name in CORE for arg in ("--runtime", name)]


@pytest.fixture
def build(lenet_build: BuildDir, tmp_path) -> BuildDir:
    """A private copy of the session's LeNet build, free to mutate."""
    return BuildDir(shutil.copytree(lenet_build.root, tmp_path / "lenet5"))


@pytest.fixture(scope="module")
def honest(lenet_build: BuildDir, tmp_path_factory):
    """`lenetc verify` on an untouched copy: the CLI result and its verify.json."""
    root = shutil.copytree(lenet_build.root, tmp_path_factory.mktemp("honest") / "lenet5")
    result = CliRunner().invoke(main, ["verify", str(root), *ONLY_CORE])
    return result, json.loads((root / "verify.json").read_text())


@pytest.fixture(scope="module")
def sensitive_conv2(lenet_build: BuildDir) -> tuple[int, int, int, int]:
    """The conv2 weight whose +1e-3 moves the logits most on verify's own inputs (so the test does
    not hinge on one training run's luck); the tests below still change it by exactly 1e-3."""
    spec = load_spec(lenet_build.spec)
    model = reference_model(lenet_build, spec)  # float32: the effects sought are >> its noise
    x = torch.from_numpy(np.concatenate([c.x for c in make_cases(lenet_build, spec)]))
    best, best_effect = (0, 0, 2, 2), -1.0
    with torch.no_grad():
        ref = model(x)
        for o in range(model.conv2.weight.shape[0]):
            for i in range(model.conv2.weight.shape[1]):
                model.conv2.weight[o, i, 2, 2] += 1e-3
                effect = float((model(x) - ref).abs().max())
                model.conv2.weight[o, i, 2, 2] -= 1e-3
                if effect > best_effect:
                    best, best_effect = (o, i, 2, 2), effect
    assert best_effect > 1e-4, f"no conv2 weight moves the logits beyond 1e-4 ({best_effect:.1e})"
    return best


def _runtimes(report: dict) -> dict[str, dict]:
    return {r["runtime"]: r for r in report["runtimes"]}


def test_honest_build_passes_on_every_cpu_runtime(honest):
    result, report = honest
    assert result.exit_code == 0, result.output
    assert report["passed"] is True and report["failures"] == []
    rows = _runtimes(report)
    for name in CPU_RUNTIMES:
        row = rows[name]
        assert row["status"] == "PASS", row
        (out,) = row["outputs"]
        assert out["output"] == "logits"
        # float32 against the float64 reference: rounding noise, far inside atol 1e-5 + rtol 1e-4
        assert 0 < out["max_abs"] < 1e-5, (name, out["max_abs"])
        assert out["min_atol"] <= report["atol"]
        assert out["argmax_agreement"] == 1.0
        assert out["accuracy"] == pytest.approx(report["reference_accuracy"])
        assert out["samples"] == 1 + 3 + 64
        assert out["elements"] == 2 * (1 + 3 + 64) * 10
    assert report["inputs"] == [
        f"{kind} batch {b}" for b in (1, 3, 64) for kind in ("random", "heldout")
    ]
    assert 0.3 < report["reference_accuracy"] <= 1.0  # a 2-epoch LeNet on digits
    for line in ("runtime ", "onnxruntime[cpu]", "verify: PASS"):
        assert line in result.output


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
def test_cuda_runtimes_are_listed_unavailable_with_the_reason(honest):
    result, report = honest
    rows = _runtimes(report)
    assert rows["torch[cuda]"]["status"] == "unavailable"
    assert "CUDA" in rows["torch[cuda]"]["reason"]
    ort_cuda = rows["onnxruntime[cuda]"]
    assert ort_cuda["status"] == "unavailable"
    assert "CUDAExecutionProvider" in ort_cuda["reason"] or "no CUDA device" in ort_cuda["reason"]
    assert "onnxruntime[cuda]: unavailable: " not in result.output  # one summary line instead
    (summary,) = [line for line in result.output.splitlines() if "unavailable here:" in line]
    assert "onnxruntime[cuda]" in summary and "lenetc verify --explain " in summary


def _nudge_onnx(build: BuildDir, name: str, index, delta: float) -> None:
    model = onnx.load(str(build.onnx))
    for tensor in model.graph.initializer:
        if tensor.name == name:
            value = numpy_helper.to_array(tensor).copy()
            value[index] += delta
            tensor.CopyFrom(numpy_helper.from_array(value, name))
            break
    else:
        raise AssertionError(f"model.onnx has no initializer {name}")
    onnx.save(model, str(build.onnx))


def test_a_nudged_onnx_weight_fails_naming_onnx_and_conv2_line_11(build, sensitive_conv2):
    _nudge_onnx(build, "conv2.weight", sensitive_conv2, 1e-3)
    write_manifest(build)  # resealed: the manifest cannot tell, the exact parameter check can
    result = CliRunner().invoke(main, ["verify", str(build.root), *ONLY_CORE])
    assert result.exit_code == EXIT_INTEGRITY, result.output
    assert "model.onnx: parameter conv2.weight is not weights.pt's" in result.stderr
    report = verify_build(build.root, runtimes=CORE)  # parity alone still localizes it
    assert not report.passed
    error = "\n".join(report.failures())
    assert error.startswith("onnxruntime[cpu] (model.onnx): output logits max |ref - out| = ")
    assert "first diverging layer: conv2 (conv2d)" in error and "spec.yaml:11" in error
    assert (
        f"parameter conv2.weight differs from weights.pt: max |Δ| 1.00e-03 at "
        f"{list(sensitive_conv2)}" in error
    )
    rows = _runtimes(json.loads(build.verify_json.read_text()))
    for name in ("onnxruntime[cpu]", "onnx.reference"):
        row = rows[name]
        assert row["status"] == "FAIL"
        assert row["outputs"][0]["max_abs"] > 1e-4
        div = row["divergence"]
        assert (div["layer"], div["type"], div["line"]) == ("conv2", "conv2d", 11)
        assert div["method"] == "intermediate outputs"
        # the layers before conv2 were matched and agree; conv2 is the first that does not
        assert [(c["layer"], c["ok"]) for c in div["layers"]][:4] == [
            ("conv1", True),
            ("relu1", True),
            ("pool1", True),
            ("conv2", False),
        ]
        assert div["layers"][3]["max_abs"] > 1e-4
    for name in ("torch[cpu]", "torchscript[cpu]", "torch.export[cpu]"):
        assert rows[name]["status"] == "PASS"


def test_a_nudged_torchscript_weight_fails_naming_torchscript_and_conv2(build, sensitive_conv2):
    scripted = torch.jit.load(str(build.torchscript))
    with torch.no_grad():
        scripted.conv2.weight[sensitive_conv2] += 1e-3
    torch.jit.save(scripted, str(build.torchscript))
    report = verify_build(build.root, runtimes=CORE)
    assert not report.passed
    rows = {r.runtime: r for r in report.runtimes}
    ts = rows["torchscript[cpu]"]
    assert ts.status == "FAIL" and ts.outputs[0].max_abs > 1e-4
    assert (ts.divergence.layer, ts.divergence.line) == ("conv2", 11)
    assert ts.divergence.method == "layer by layer"
    assert "submodule conv2" in ts.divergence.detail
    (failure,) = report.failures()
    assert failure.startswith("torchscript[cpu] (model.torchscript.pt): output logits max |ref - ")
    assert "first diverging layer: conv2 (conv2d)" in failure
    for name in ("torch[cpu]", "torch.export[cpu]", "onnxruntime[cpu]", "onnx.reference"):
        assert rows[name].status == "PASS"


def test_a_silent_fallback_from_cuda_to_cpu_is_a_failure(build, monkeypatch):
    """onnxruntime is made to *list* CUDA; the session it builds really runs on the CPU only."""
    import onnxruntime

    from lenetc.runtimes import onnxruntime as ort_adapter
    from lenetc.runtimes import torch_family

    listed = onnxruntime.get_available_providers()
    monkeypatch.setattr(
        onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", *listed]
    )
    monkeypatch.setattr(ort_adapter, "cuda_device_problem", lambda: None)
    monkeypatch.setattr(torch_family, "torch_cuda_problem", lambda: "not under test")
    report = verify_build(build.root, runtimes=CORE)
    rows = {r.runtime: r for r in report.runtimes}
    row = rows["onnxruntime[cuda]"]
    assert row.status == "FAIL" and not row.outputs
    assert "requested CUDAExecutionProvider, but the session runs on CPUExecutionProvider" in (
        row.reason
    )
    assert "silent fallback" in row.reason
    assert rows["onnxruntime[cpu]"].status == "PASS"
    assert not report.passed
    assert any(
        line.startswith("onnxruntime[cuda] (model.onnx): requested") for line in report.failures()
    )


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
def test_require_cuda_turns_unavailable_into_exit_3(build):
    result = CliRunner().invoke(main, ["verify", str(build.root), "--require", "cuda", *ONLY_CORE])
    assert result.exit_code == EXIT_PARITY, result.output
    assert "onnxruntime[cuda] (model.onnx): required (--require cuda) but unavailable: " in (
        result.output
    )
    rows = _runtimes(json.loads(build.verify_json.read_text()))
    assert rows["torch[cuda]"]["status"] == "FAIL"
    assert rows["onnxruntime[cpu]"]["status"] == "PASS"


def test_tolerance_flags_override_the_spec_and_float32_noise_starts_at_conv1(build):
    """With atol 1e-12 and rtol 0 float32 cannot pass; the divergence is the very first layer."""
    result = CliRunner().invoke(
        main, ["verify", str(build.root), "--atol", "1e-12", "--rtol", "0", "--json", *ONLY_CORE]
    )
    assert result.exit_code == EXIT_PARITY
    report = json.loads(result.output[: result.output.index("\nerror: ")])
    assert (report["atol"], report["rtol"]) == (1e-12, 0)
    row = _runtimes(report)["onnxruntime[cpu]"]
    out = row["outputs"][0]
    assert out["min_atol"] == pytest.approx(out["max_abs"])  # with rtol 0, min atol = max abs
    assert 1e-9 < out["min_atol"] < 1e-5
    assert (row["divergence"]["layer"], row["divergence"]["line"]) == ("conv1", 8)


def test_a_missing_artifact_fails_and_a_non_build_folder_exits_1(build, tmp_path):
    build.pt2.unlink()
    report = verify_build(build.root, write=False, runtimes=CORE)
    row = {r.runtime: r for r in report.runtimes}["torch.export[cpu]"]
    assert (row.status, row.reason) == ("FAIL", "model.pt2 is missing from the build folder")
    result = CliRunner().invoke(main, ["verify", str(tmp_path / "nothing")])
    assert result.exit_code == 2  # click: no such folder
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["verify", str(tmp_path / "empty")])
    assert result.exit_code == 1
    assert "empty is not a lenetc build folder (no spec.yaml, no manifest.json)" in result.output


def test_verify_json_is_plain_json_with_the_numbers(honest):
    _, report = honest
    row = _runtimes(report)["onnxruntime[cpu]"]
    assert set(row) >= {
        "runtime",
        "artifact",
        "device",
        "status",
        "reason",
        "outputs",
        "divergence",
        "seconds",
    }
    assert row["artifact"] == "model.onnx" and row["device"] == "cpu"
    assert isinstance(report["seconds"], float) and report["seconds"] > 0
    assert np.isfinite(row["outputs"][0]["max_rel"])
