"""Phones and OpenCV: model.pte (ExecuTorch, XNNPACK) and model.tflite (LiteRT) in the build folder,
the manifest and the integrity check; export skipped with its reason when a package is missing,
broken or turned off in the spec; a broken runtime package fails its own row only, in one line;
the .pte's planned batch and chunks beyond it; the export: keys; bench rows.

Outside CI a missing package skips its tests with the install command (test_embed.need)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lenetc.artifacts import BuildDir
from lenetc.cli import main
from lenetc.errors import EXIT_INTEGRITY, SpecError
from lenetc.export import exporters, mobile
from lenetc.runtimes import plan
from lenetc.spec.load import load_spec
from lenetc.verify.parity import reference_model, verify_build
from tests.test_embed import need

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
MOBILE_ROWS = ("executorch[xnnpack]", "litert", "litert[builtin]")


@pytest.fixture()
def folder(lenet_build, tmp_path) -> BuildDir:
    return BuildDir(shutil.copytree(lenet_build.root, tmp_path / "lenet5"))


@pytest.mark.parametrize("name", ["model.pte", "model.tflite"])
def test_each_mobile_file_is_in_the_manifest_and_an_edit_is_exit_4(folder, name):
    need(folder, "executorch", "litert")
    manifest = (folder.manifest).read_text()
    assert f'"{name}"' in manifest
    path = folder.root / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    result = CliRunner().invoke(main, ["verify", str(folder.root)])
    assert result.exit_code == EXIT_INTEGRITY, result.output
    assert f"{path}: sha256 " in result.output and "changed since the build" in result.output


def test_a_broken_package_fails_only_its_row_in_one_line(folder, monkeypatch):
    need(folder, "executorch", "litert", "opencv-dnn")
    import cv2

    # installed (find_spec sees the package) but its runtime module cannot be imported
    monkeypatch.setitem(sys.modules, "executorch.runtime", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)

    def broken(model_bytes):
        raise cv2.error("OpenCV(5.1.0) dnn: backend failed to load\nsecond line")

    monkeypatch.setattr(cv2.dnn, "readNetFromONNX", broken)
    rows = ("executorch", "litert", "opencv-dnn", "onnxruntime[cpu]")
    report = verify_build(folder.root, runtimes=rows, write=False)
    found = {r.runtime: r for r in report.runtimes}
    for name in (*MOBILE_ROWS, "opencv-dnn"):
        assert found[name].status == "FAIL", name
        assert found[name].reason and "\n" not in found[name].reason, name
    assert found["executorch[xnnpack]"].reason.startswith(
        "ExecuTorch could not load model.pte: ModuleNotFoundError: import of executorch.runtime"
    )
    assert "OpenCV could not load the model: error: OpenCV(5.1.0) dnn" in found["opencv-dnn"].reason
    assert found["onnxruntime[cpu]"].status == "PASS"


def test_export_is_skipped_with_its_reason(folder, monkeypatch):
    need(folder, "executorch")
    installed = sys.modules.get("executorch")
    spec = load_spec(folder.spec)
    model = reference_model(folder, spec).float()
    folder.pte.unlink(missing_ok=True)
    folder.tflite.unlink(missing_ok=True)
    monkeypatch.setitem(sys.modules, "executorch", None)  # not installed
    skipped = exporters.export_pte(model, spec, folder)
    assert skipped == mobile.Skipped(
        "model.pte", "executorch is not installed; install: pip install 'lenetc[mobile]'"
    )
    monkeypatch.setitem(sys.modules, "litert_torch", None)
    assert "litert-torch is not installed" in exporters.export_tflite(model, spec, folder).why
    if installed is None:
        monkeypatch.delitem(sys.modules, "executorch")
    else:  # the imported package itself: importing it twice would register its ops twice
        monkeypatch.setitem(sys.modules, "executorch", installed)
    monkeypatch.setitem(sys.modules, "executorch.exir", None)  # installed, broken
    why = exporters.export_pte(model, spec, folder).why
    assert why.startswith("executorch is installed but cannot be imported (ModuleNotFoundError: ")
    assert not folder.pte.exists() and not folder.tflite.exists()
    report = exporters.ExportReport(18, skipped={"model.pte": why})
    assert report.summary().splitlines()[1] == f"  model.pte not exported: {why}"
    # the verify row says why there is nothing to run
    (row,) = plan(folder, spec, ("cpu",), ("executorch",))
    assert row.unavailable() == (
        "model.pte was not exported (executorch was not installed when it was built)"
    )


def test_the_spec_turns_each_export_off(tmp_path):
    text = (ROOT / "specs" / "lenet5.yaml").read_text()
    path = tmp_path / "s.yaml"
    path.write_text(
        text.replace(
            "export:\n",
            "export:\n  executorch: {enabled: false}\n  litert: {enabled: false}\n",
        )
    )
    spec = load_spec(path)
    assert (spec.export.executorch, spec.export.litert) == (False, False)
    out = BuildDir(tmp_path / "b")
    model = torch.nn.Identity()
    assert exporters.export_pte(model, spec, out).why == "export.executorch.enabled is false"
    assert exporters.export_tflite(model, spec, out).why == "export.litert.enabled is false"
    path.write_text(text.replace("export:\n", "export:\n  executorch: {max_batch: 0, enable: 1}\n"))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert "unknown key 'enable' in export.executorch" in message and "'enabled'" in message
    assert "export.executorch.max_batch: " in message


def test_the_pte_plans_max_batch_and_a_larger_batch_runs_in_chunks(folder):
    need(folder, "executorch")
    from lenetc.runtimes.executorch import ExecuTorch

    spec = load_spec(folder.spec)
    model = reference_model(folder, spec).float()
    data = mobile.pte_bytes(model, exporters.example_input(spec), 4)
    folder.pte.write_bytes(data)
    row = ExecuTorch(folder, spec)
    row.load()
    assert row.capacity == 4
    x = np.random.default_rng(0).standard_normal((11,) + spec.input_shape).astype(np.float32)
    (got,) = row.run(x)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert got.shape == (11, 10) and np.abs(got - want).max() < 1e-5


def test_bench_times_the_in_process_mobile_and_opencv_rows(lenet_build):
    need(lenet_build, "executorch", "litert", "opencv-dnn")
    from lenetc.bench import _bench_one

    class Bar:
        def update(self, n):
            pass

    spec = load_spec(lenet_build.spec)
    inputs = {b: np.zeros((b,) + spec.input_shape, np.float32) for b in (1, 8)}
    rows = plan(lenet_build, spec, ("cpu",), ("executorch", "litert", "opencv-dnn"))
    assert [r.name for r in rows] == ["opencv-dnn", *MOBILE_ROWS]
    for row in rows:
        result = _bench_one(row, inputs, 1, 2, 0.01, Bar())
        assert result.status == "ok", (row.name, result.reason)
        assert [t.batch for t in result.timings] == [1, 8]
