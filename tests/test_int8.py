"""int8: the quantize: section, model.int8.onnx, the integer reference, the C variant, the proof.

One real LeNet-5 build with --int8 (2 epochs) is shared; every row of its int8 proof is checked
against the numpy integer reference, which is itself held to gemmlowp's arithmetic.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper
from tools import require_tool

from lenetc.artifacts import BuildDir
from lenetc.check.shapes import check
from lenetc.cli import main
from lenetc.errors import RuntimeFailure
from lenetc.quant import fixed
from lenetc.quant.calibration import calibration_samples
from lenetc.quant.params import load_quant_model
from lenetc.quant.qdq import SETTINGS
from lenetc.quant.reference import integer_forward
from lenetc.spec.config import QuantizeConfig
from lenetc.spec.load import load_spec
from lenetc.verify.int8 import Int8Report

SPECS = Path(__file__).resolve().parent.parent / "specs"


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def int8_build(tmp_path_factory) -> BuildDir:
    from lenetc.build import BuildOptions, build

    out = tmp_path_factory.mktemp("int8")
    opts = BuildOptions(
        out=out, epochs=2, quiet=True, int8=True, runtimes=("onnxruntime", "c", "tract", "openvino")
    )
    return BuildDir(build(SPECS / "lenet5.yaml", opts).folder)


def test_gemmlowp_arithmetic():
    # SaturatingRoundingDoublingHighMul: (a * b * 2) >> 32 rounded; the one overflow saturates
    assert fixed.srdhm(np.array([1 << 30]), 1 << 30).tolist() == [1 << 29]
    assert fixed.srdhm(np.array([-(2**31)]), -(2**31)).tolist() == [2**31 - 1]
    assert fixed.srdhm(np.array([-5]), 1 << 30).tolist() == [-2]  # -2.5: ties away from zero
    # RoundingDivideByPOT: ties away from zero, both signs
    got = fixed.rounding_divide_by_pot(np.array([5, -5, 6, -6, 7, -7]), 1).tolist()
    assert got == [3, -3, 3, -3, 4, -4]
    for real in (0.00123, 0.5, 0.75, 1.0, 3.3):
        m0, shift = fixed.quantized_multiplier(real)
        assert 2**30 <= m0 < 2**31
        assert abs(m0 * 2.0 ** (shift - 31) - real) <= real * 2**-30
    acc = np.arange(-100_000, 100_000, 997)
    m0, shift = fixed.quantized_multiplier(0.0123)
    got = fixed.multiply_by_quantized_multiplier(acc, m0, shift)
    assert np.abs(got - acc * 0.0123).max() <= 0.5 + 1e-6


def test_settings_that_keep_onnxruntime_exact_are_kept():
    """Dropping reduce_range (s8s8 with 8-bit weights saturates AVX2 kernels without VNNI) or
    per-channel symmetric weights must fail here, not ship."""
    assert SETTINGS["reduce_range"] is True
    assert SETTINGS["per_channel"] is True
    assert SETTINGS["extra_options"]["WeightSymmetric"] is True
    assert (SETTINGS["activation_type"], SETTINGS["weight_type"]) == ("QInt8", "QInt8")


def test_int8_build_artifacts(int8_build):
    model = onnx.load(str(int8_build.int8_onnx))
    weights = {
        t.name: numpy_helper.to_array(t)
        for t in model.graph.initializer
        if t.name.endswith("weight_quantized")
    }
    assert weights, "no quantized weights"
    for name, w in weights.items():  # 7-bit range: what reduce_range buys
        assert w.dtype == np.int8 and -64 <= w.min() and w.max() <= 64, name
    manifest = json.loads(int8_build.manifest.read_text())
    assert "model.int8.onnx" in json.dumps(manifest)
    assert "c/model_int8.c" in json.dumps(manifest)
    size = int8_build.int8_onnx.stat().st_size / int8_build.onnx.stat().st_size
    assert size <= 0.32


def test_int8_rows_in_steps(int8_build):
    report = json.loads(int8_build.verify_json.read_text())["int8"]
    rows = {r["runtime"]: r for r in report["rows"]}
    assert rows["c[cpu,int8]"]["status"] == "PASS"
    assert rows["c[cpu,int8]"]["max_steps"] == 0  # exact: the reference's own arithmetic
    assert rows["onnxruntime[cpu]"]["status"] == "PASS"
    assert rows["onnxruntime[cpu]"]["rounding"] == "float"
    assert rows["onnxruntime[cpu]"]["max_steps"] == 0  # reduce_range: no saturation
    for name in ("tract", "openvino[cpu,f32]"):
        assert rows[name]["status"] in ("PASS", "unavailable"), rows[name]
    assert report["int8_accuracy"] is not None and report["drop_points"] <= 1.0
    assert 0.9 <= report["argmax_agreement"] <= 1.0
    assert [r["layers"][0] for r in report["sqnr"]][:2] == ["conv1", "pool1"]
    assert all(r["sqnr_db"] > 10 for r in report["sqnr"])


def test_reference_equals_onnxruntime(int8_build):
    """The oracle itself against ONNX Runtime's fused int8 kernels on held-out digits: equal in
    ONNX Runtime's rounding, within a step of it in gemmlowp's (the C variant's)."""
    import onnxruntime as ort

    qm = load_quant_model(int8_build.int8_onnx, check(load_spec(int8_build.spec)))
    x = np.load(int8_build.heldout)["x"].astype(np.float32)
    got = ort.InferenceSession(str(int8_build.int8_onnx)).run(None, {"input": x})[0]
    as_ort, _ = integer_forward(qm, x, "float")
    assert np.array_equal(got, as_ort)
    fixed_point, values = integer_forward(qm, x)
    steps = np.abs(got - fixed_point) / qm.output.out.scale
    assert steps.max() <= 1.001
    assert (steps > 0.5).mean() < 0.1  # a rare rounding tie, not a drift
    assert values["conv1"].q.min() >= -128 and values["conv1"].params.zero_point == -128


def test_c_int8_weights_are_the_qdq_weights(int8_build):
    from lenetc.targets.c.int8 import read_int8_weights

    held = read_int8_weights((int8_build.c_dir / "model_int8_weights.h").read_text())
    qm = load_quant_model(int8_build.int8_onnx, check(load_spec(int8_build.spec)))
    for name in ("conv1", "conv2", "fc1", "fc2", "fc3"):
        assert np.array_equal(held[f"{name}_w"], qm.layers[name].weight.ravel())
        assert np.array_equal(held[f"{name}_b"], qm.layers[name].bias.ravel())


def test_calibration_errors():
    cfg = QuantizeConfig(samples=100, samples_line=7)
    with pytest.raises(
        RuntimeFailure, match=r"spec.yaml:7: .*samples is 100, but the training split has 10"
    ):
        calibration_samples(np.zeros((10, 4), np.float32), cfg, "spec.yaml")
    x = np.zeros((200, 4), np.float32)
    x[3, 1] = np.nan
    with pytest.raises(RuntimeFailure, match="calibration sample 3 .* NaN") as err:
        calibration_samples(x, cfg, "spec.yaml")
    assert "\n" not in str(err.value)


def test_drop_over_the_limit_fails_with_the_numbers():
    r = Int8Report(
        "model.int8.onnx",
        0.1,
        0.5,
        float_accuracy=0.98,
        int8_accuracy=0.97,
        drop_points=1.0,
        test_samples=359,
    )
    assert not r.passed
    (line,) = r.failures()
    assert "drop 1.00 points" in line and "98.00%" in line and "max_drop 0.5" in line


def _spec(tmp_path: Path, layers: str, extra: str = "") -> Path:
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ninput: {shape: [1, 8, 8]}\nlayers:\n" + layers + extra)
    return path


def test_bad_quantize_specs(tmp_path):
    p = _spec(
        tmp_path,
        "  - {type: flatten}\n  - {type: linear, out_features: 3}\n",
        "quantize: {scheme: int8, calibration: {sample: 5, method: minmax}}\n",
    )
    result = run("check", str(p))
    assert result.exit_code == 2
    assert "unknown key 'sample' in quantize.calibration" in result.output
    assert "did you mean 'samples'" in result.output
    p = _spec(
        tmp_path, "  - {type: flatten}\n  - {type: tanh}\n  - {type: linear, out_features: 3}\n"
    )
    result = run("build", str(p), "-o", str(tmp_path / "b"), "--int8", "--epochs", "1")
    assert result.exit_code == 2, result.output
    assert "s.yaml:5: layer" in result.output and "no integer kernel for tanh" in result.output
    assert "Traceback" not in result.output
    p = _spec(
        tmp_path,
        "  - {type: max_pool2d, kernel_size: 2}\n  - {type: flatten}\n",
        "quantize: int8\n",
    )
    result = run("build", str(p), "-o", str(tmp_path / "b"), "--epochs", "1")
    assert result.exit_code == 2, result.output
    assert (
        "s.yaml:6: quantize: int8 quantizes conv2d and linear weights, and s has none"
        in result.output
    )


def test_too_few_calibration_samples_is_one_line(tmp_path):
    p = _spec(
        tmp_path,
        "  - {type: flatten}\n  - {type: linear, out_features: 10}\n",
        "train: {dataset: {name: digits}, epochs: 1}\nquantize: {calibration: {samples: 100000}}\n",
    )
    result = run("build", str(p), "-o", str(tmp_path / "b"), "--runtime", "onnxruntime")
    assert result.exit_code == 1, result.output
    assert (
        "s.yaml:7: quantize.calibration.samples is 100000, but the training split has"
        in result.output
    )


def test_report_has_the_int8_section(int8_build):
    from lenetc.look.report import render_report

    page = render_report(int8_build.root)
    assert 'id="int8-table"' in page and 'id="int8-sqnr"' in page
    assert "c[cpu,int8]" in page and "model.int8.onnx" in page and "conv1, relu1" in page


def test_predict_int8(int8_build, tmp_path):
    x = np.load(int8_build.heldout)["x"][:3]
    np.save(tmp_path / "x.npy", x)
    result = run(
        "predict", str(int8_build.root), str(tmp_path / "x.npy"), "--normalized", "--int8", "--json"
    )
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)) == 3


def test_c_int8_exact_on_padding_stride_groups_dilation(tmp_path):
    from lenetc.build import BuildOptions, build

    spec = Path(__file__).parent / "specs" / "int8" / "convs.yaml"  # not in the generic sets
    opts = BuildOptions(out=tmp_path, epochs=1, quiet=True, runtimes=("onnxruntime", "c"))
    result = build(spec, opts)
    assert result.passed, result.parity
    report = json.loads((result.folder / "verify.json").read_text())["int8"]
    rows = {r["runtime"]: r for r in report["rows"]}
    assert rows["c[cpu,int8]"]["max_steps"] == 0 and rows["c[cpu,int8]"]["elements"] > 0
    assert rows["onnxruntime[cpu]"]["max_steps"] <= 1.001

    c_dir = result.folder / "c"
    flags = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-c"]
    for cc in ("cc", require_tool("clang")):  # warning-free in the system compiler and clang
        done = subprocess.run(
            [cc, *flags, "model_int8.c", "-o", "/dev/null"],
            cwd=c_dir,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr


def test_int8_rows_follow_runtime_selection(int8_build):
    from lenetc.verify.parity import verify_build

    report = verify_build(int8_build.root, runtimes=("tract",), write=False)
    assert [r.runtime for r in report.int8.rows] == ["tract"]
    report = verify_build(int8_build.root, runtimes=("c",), write=False)
    assert [r.runtime for r in report.int8.rows] == ["c[cpu,int8]"]


def _tiny_quant_model():
    """A hand-made QuantModel (no training): a padded conv, an unfused ReLU with a rescale, a
    max pool and a linear layer, with parameters a quantizer could have chosen."""
    from lenetc.quant.params import LayerQuant, QParams, QuantModel
    from lenetc.spec.load import parse_spec
    from lenetc.spec.yamlsafe import load_yaml_text

    text = (
        "name: tiny\ninput: {shape: [2, 6, 6]}\nlayers:\n"
        "  - {type: conv2d, out_channels: 3, kernel_size: 3, padding: 1}\n"
        "  - {type: relu}\n"
        "  - {type: max_pool2d, kernel_size: 2}\n"
        "  - {type: flatten}\n"
        "  - {type: linear, out_features: 4}\n"
    )
    trace = check(parse_spec(load_yaml_text(text.encode(), "tiny.yaml"), "tiny.yaml", Path(".")))
    rng = np.random.default_rng(3)
    qm = QuantModel(trace, QParams(0.02, 5))
    conv = LayerQuant("conv1", "conv2d", "c", QParams(0.05, 10))
    conv.weight = rng.integers(-64, 65, (3, 2, 3, 3)).astype(np.int8)
    conv.weight_scale = np.array([0.01, 0.02, 0.015], np.float32)
    conv.bias = rng.integers(-500, 500, 3).astype(np.int32)
    fc = LayerQuant("fc1", "linear", "f", QParams(0.1, -3))
    fc.weight = rng.integers(-64, 65, (4, 27)).astype(np.int8)
    fc.weight_scale = np.array([0.01, 0.011, 0.012, 0.013], np.float32)
    fc.bias = rng.integers(-900, 900, 4).astype(np.int32)
    qm.layers = {
        "conv1": conv,
        "relu1": LayerQuant("relu1", "relu", "r", QParams(0.04, -128)),  # not fused: rescaled
        "pool1": LayerQuant("pool1", "max_pool2d", "p", None),
        "flatten1": LayerQuant("flatten1", "flatten", "v", None),
        "fc1": fc,
    }
    return qm


def test_c_int8_golden_and_exact_without_training(golden, tmp_path):
    import ctypes

    from lenetc.quant.c_export import render_c_int8
    from lenetc.runtimes.c import compile_library

    qm = _tiny_quant_model()
    files = render_c_int8(qm)
    golden.check("c_int8/model_int8.c", files["model_int8.c"])
    golden.check("c_int8/model_int8_weights.h", files["model_int8_weights.h"])
    style = f"--style=file:{Path(__file__).resolve().parent.parent / '.clang-format'}"
    formatted = subprocess.run(
        [require_tool("clang-format"), style, "--assume-filename=model_int8.c"],
        input=files["model_int8.c"],
        capture_output=True,
        text=True,
    )
    assert formatted.stdout == files["model_int8.c"]  # the C target's committed style
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    lib = ctypes.CDLL(str(compile_library(tmp_path, sources=tuple(files))))
    lib.tiny_int8_forward.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int)
    x = np.random.default_rng(0).standard_normal((50, 2, 6, 6)).astype(np.float32) * 2
    y = np.empty((50, 4), np.float32)
    lib.tiny_int8_forward(x.ctypes.data, y.ctypes.data, 50)
    want, values = integer_forward(qm, x)
    assert np.array_equal(y, want)  # bit for bit, saturation included
    assert values["relu1"].params.zero_point == -128 and (values["conv1"].q < 10).any()


DRIVER = """#include <stdio.h>
void tiny_int8_forward(const float *x, float *y, int n);
int main(void) {
    static float x[50 * 72], y[50 * 4];
    if (fread(x, sizeof x, 1, stdin) != 1) return 2;
    tiny_int8_forward(x, y, 50);
    fwrite(y, sizeof y, 1, stdout);
    return 0;
}
"""


def test_c_int8_runs_clean_under_asan_and_ubsan(tmp_path):
    """Saturating inputs too: no undefined behaviour in the fixed-point arithmetic."""
    from lenetc.quant.c_export import render_c_int8

    qm = _tiny_quant_model()
    for name, text in render_c_int8(qm).items():
        (tmp_path / name).write_text(text)
    (tmp_path / "driver.c").write_text(DRIVER)
    flags = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-g"]
    flags += ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    subprocess.run(
        ["gcc", *flags, "-o", "prog", "driver.c", "model_int8.c", "-lm"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    x = np.random.default_rng(1).standard_normal((50, 2, 6, 6)).astype(np.float32)
    x[:10] *= 1e6  # far outside the calibrated range: every layer saturates
    done = subprocess.run([str(tmp_path / "prog")], input=x.tobytes(), capture_output=True)
    assert done.returncode == 0 and not done.stderr, done.stderr[-2000:]
    got = np.frombuffer(done.stdout, np.float32).reshape(50, 4)
    assert np.array_equal(got, integer_forward(qm, x)[0])
