"""ONNX below opset 18: export.onnx.opset 13 to 17 goes through onnx.version_converter (torch's
exporter alone keeps 18 without a word), each converted file proven by parity in every ONNX row,
and an opset that cannot express an operator refused with the operator named (exit 2)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from lenetc.artifacts import BuildDir
from lenetc.errors import SpecError
from lenetc.export import onnx_opset
from lenetc.spec.load import load_spec
from lenetc.verify.parity import verify_build
from lenetc.verify.results import UNAVAILABLE

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent

ONNX_ROWS = ("onnxruntime[cpu]", "onnx.reference", "tract", "openvino[cpu,f32]", "opencv-dnn")


@pytest.fixture(scope="module")
def trained(lenet_build):
    from lenetc.export.exporters import DataFacts
    from lenetc.export.onnx_meta import read
    from lenetc.train.datasets import Dataset
    from lenetc.verify.parity import reference_model

    spec = load_spec(lenet_build.spec)
    held = np.load(lenet_build.heldout)
    info = read({p.key: p.value for p in onnx.load(str(lenet_build.onnx)).metadata_props})
    x, y = held["x"], held["y"]
    data = Dataset("digits", x, y, x[:0], y[:0], x, y, info.mean, info.std, info.labels)
    return spec, reference_model(lenet_build, spec), DataFacts.from_dataset(data)


@pytest.mark.parametrize("opset", [13, 14, 15, 16, 17, 18])
def test_every_opset_from_13_exports_and_passes_parity(opset, trained, lenet_build, tmp_path):
    from lenetc.export.exporters import export_onnx

    spec, model, facts = trained
    out = BuildDir(shutil.copytree(lenet_build.root, tmp_path / "lenet5"))
    spec = dataclasses.replace(spec, export=dataclasses.replace(spec.export, opset=opset))
    diffs = export_onnx(model, spec, facts, out)
    assert max(diffs.values()) < 1e-5
    written = onnx.load(str(out.onnx))
    assert [o.version for o in written.opset_import] == [opset]  # no private domain left
    onnx.checker.check_model(written, full_check=True)
    assert {p.key for p in written.metadata_props} >= {"class_labels", "spec_sha256"}
    report = verify_build(out.root, runtimes=ONNX_ROWS, write=False)
    rows = {r.runtime: r for r in report.runtimes}
    for name in ONNX_ROWS:
        if rows[name].status == UNAVAILABLE:  # an optional runtime not installed here
            continue
        assert rows[name].status == "PASS", (opset, name, rows[name].reason)


def _one_node(op: str, opset: int, **attrs) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    node = helper.make_node(op, ["x"], ["y"], name=f"{op.lower()}_0", **attrs)
    graph = helper.make_graph([node], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_an_operator_the_older_opset_lacks_is_refused_by_name():
    with pytest.raises(onnx_opset.OpsetRefused) as info:  # Mish exists from opset 18
        onnx_opset.convert(_one_node("Mish", 18), 17)
    assert str(info.value) == (
        "operator Mish (node mish_0): opset 17 has no Mish (it first appears in opset 18)"
    )


def test_a_carried_operator_keeps_its_nodes_and_a_changed_one_is_refused():
    relu = onnx_opset.convert(_one_node("Relu", 18), 13)  # Relu-14 -> 13: no adapter upstream
    assert [(n.op_type, n.domain) for n in relu.graph.node] == [("Relu", "")]
    assert [(o.domain, o.version) for o in relu.opset_import] == [("", 13)]
    # integer types came with Relu-14: an int32 Relu cannot be carried back to Relu-13
    x = helper.make_tensor_value_info("x", TensorProto.INT32, [4])
    y = helper.make_tensor_value_info("y", TensorProto.INT32, [4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(onnx_opset.OpsetRefused, match=r"Relu-13 \(opset 13\) does not accept "):
        onnx_opset.convert(model, 13)


def test_the_refusal_is_a_spec_error_at_the_opset_line(tmp_path):
    from lenetc.export.exporters import older_opset

    path = tmp_path / "s.yaml"
    path.write_text((ROOT / "specs" / "lenet5.yaml").read_text().replace("opset: 18", "opset: 17"))
    spec = load_spec(path)
    with pytest.raises(SpecError) as info:
        older_opset(_one_node("Mish", 18), spec)
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "opset: 17" in t)
    assert str(info.value) == (
        f"{path}:{line}: export.onnx.opset: opset 17 cannot express this network: operator Mish "
        "(node mish_0): opset 17 has no Mish (it first appears in opset 18)\n"
        "  hint: use opset: 18 or higher"
    )


SPECS = sorted((ROOT / "specs").glob("*.yaml"))


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_spec_exports_at_opset_13_and_computes_what_torch_does(path, tmp_path):
    """Every layer kind the specs use (BatchNormalization-15 and ReduceMean-18 included, whose
    way down needs lenetc's carry and attribute clean-up) at the lowest opset, untrained."""
    import torch

    from lenetc.artifacts import module_class_from_source
    from lenetc.check.shapes import check
    from lenetc.export.exporters import DataFacts, export_onnx
    from lenetc.targets.torch import render

    spec = load_spec(path)
    spec = dataclasses.replace(spec, export=dataclasses.replace(spec.export, opset=13))
    trace = check(spec)
    out = BuildDir(tmp_path / spec.name).create()
    torch.manual_seed(0)
    model = module_class_from_source(render(trace), spec.class_name, out.model_py)().eval()
    channels = spec.input_shape[0]  # per channel, or per feature for a flat input
    x = np.random.default_rng(0).standard_normal((5,) + spec.input_shape).astype(np.float32)
    facts = DataFacts(
        "synthetic",
        (0.0,) * channels,
        (1.0,) * channels,
        tuple(str(i) for i in range(trace.num_classes)),
        (0.0, 1.0),
        x,
        np.zeros(5, np.int64),
    )
    export_onnx(model, spec, facts, out)
    written = onnx.load(str(out.onnx))
    assert [o.version for o in written.opset_import] == [13]
    onnx.checker.check_model(written, full_check=True)
    import onnxruntime as ort

    session = ort.InferenceSession(str(out.onnx), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    (got,) = session.run(None, {"input": x})
    assert np.abs(got - want).max() <= 1e-5 + 1e-4 * np.abs(want).max()
