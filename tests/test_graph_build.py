"""Graphs end to end: a residual block with a projection shortcut and a cat of two branches
(tests/specs/graph_small.yaml) trains, exports to ONNX, TorchScript and .pt2, and passes parity on
every CPU runtime; a nudged weight on the shortcut branch is found as the first diverging layer
by its name and YAML line, in ONNX (intermediate outputs) and in TorchScript (layer by layer)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest
import torch
from onnx import numpy_helper

from lenetc.artifacts import BuildDir
from lenetc.build import BuildOptions, build
from lenetc.verify.parity import verify_build

pytestmark = pytest.mark.slow
SPEC = Path(__file__).resolve().parent / "specs" / "graph_small.yaml"
SHORT_LINE = 14  # `short`, the 1x1 projection on the shortcut


@pytest.fixture(scope="module")
def graph_build(tmp_path_factory) -> BuildDir:
    result = build(SPEC, BuildOptions(out=tmp_path_factory.mktemp("graph"), quiet=True))
    assert result.passed, result.parity
    assert result.test_accuracy > 0.5, result.test_accuracy  # 3 epochs: well above chance (10%)
    return BuildDir(result.folder)


def test_graph_builds_and_every_cpu_runtime_passes(graph_build: BuildDir):
    report = json.loads(graph_build.verify_json.read_text())
    rows = {r["runtime"]: r["status"] for r in report["runtimes"]}
    for name in ("torch[cpu]", "torchscript[cpu]", "torch.export[cpu]", "onnxruntime[cpu]"):
        assert rows[name] == "PASS", rows
    for artifact in ("model.onnx", "model.torchscript.pt", "model.pt2", "weights.pt"):
        assert (graph_build.root / artifact).is_file()
    onnx_ops = {n.op_type for n in onnx.load(str(graph_build.onnx)).graph.node}
    assert {"Add", "Concat"} <= onnx_ops, onnx_ops


def _copy(graph_build: BuildDir, tmp_path: Path) -> BuildDir:
    return BuildDir(shutil.copytree(graph_build.root, tmp_path / "graph_small"))


def test_a_nudged_shortcut_weight_in_onnx_is_found_on_its_branch(graph_build, tmp_path):
    out = _copy(graph_build, tmp_path)
    model = onnx.load(str(out.onnx))
    (init,) = [t for t in model.graph.initializer if t.name == "short.weight"]
    value = numpy_helper.to_array(init).copy()
    value += 0.05  # every weight of the projection: its output moves far beyond 1e-5
    init.CopyFrom(numpy_helper.from_array(value, init.name))
    onnx.save(model, str(out.onnx))
    report = verify_build(out.root)
    assert not report.passed
    rows = {r.runtime: r for r in report.runtimes}
    ort = rows["onnxruntime[cpu]"]
    assert ort.status == "FAIL"
    div = ort.divergence
    assert (div.layer, div.type, div.line) == ("short", "conv2d", SHORT_LINE), div.detail
    assert div.method == "intermediate outputs"
    checked = {c.layer: c.ok for c in div.layers}
    # the main path, computed before the shortcut in the spec, still agrees
    assert checked["stem"] is True and checked["main"] is True, checked
    assert rows["torch[cpu]"].status == "PASS"


def test_a_nudged_shortcut_weight_in_torchscript_is_found_layer_by_layer(graph_build, tmp_path):
    out = _copy(graph_build, tmp_path)
    scripted = torch.jit.load(str(out.torchscript))
    with torch.no_grad():
        scripted.short.weight += 0.05
    torch.jit.save(scripted, str(out.torchscript))
    report = verify_build(out.root)
    ts = {r.runtime: r for r in report.runtimes}["torchscript[cpu]"]
    assert ts.status == "FAIL"
    assert (ts.divergence.layer, ts.divergence.line) == ("short", SHORT_LINE)
    assert ts.divergence.method == "layer by layer"
    assert "submodule short" in ts.divergence.detail


def test_a_folded_batch_norm_is_checked_as_its_fold_and_a_resealed_nudge_exits_4(
    graph_build, tmp_path
):
    """The ONNX exporter folds bn1 into conv2: integrity checks conv2's initializers as that
    fold of weights.pt's values (verify/agreement.py), so an honest build passes and a nudged
    batch-norm scale, re-sealed, is refused (exit 4) naming both layers."""
    from click.testing import CliRunner

    from lenetc.cli import main
    from lenetc.export.manifest import write_manifest
    from lenetc.verify.agreement import check_build

    names = {t.name for t in onnx.load(str(graph_build.onnx)).graph.initializer}
    assert "bn1.weight" not in names and "conv2.weight" in names, "bn1 is no longer folded"
    check_build(graph_build.root)
    out = _copy(graph_build, tmp_path)
    state = torch.load(out.weights, weights_only=True)
    state["bn1.weight"][0] += 1e-3
    torch.save(state, out.weights)
    write_manifest(out)
    result = CliRunner().invoke(main, ["verify", str(out.root)])
    assert result.exit_code == 4, result.output
    assert "conv2.weight is not weights.pt's conv2 with bn1 folded in" in result.stderr
