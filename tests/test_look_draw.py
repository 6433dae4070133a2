"""lenetc draw: the LeNet-5-style drawing, one element per layer labelled with check's sizes.

The drawing is parsed as XML (it is standalone SVG); every spec layer must be exactly one element
with class "layer", whose data-shape is the output_shape `check --json` reports. Graph specs
(`inputs:`, add, cat) are drawn from a synthetic trace until the graph work lands: branches stand
in one column, joins read several arrows, a skip connection goes over the blocks between.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from lenetc.check.shapes import ShapeTrace, TracedNode, check
from lenetc.cli import main
from lenetc.layers import Inferred
from lenetc.look.draw import draw
from lenetc.look.layout import layout
from lenetc.spec.load import INPUT, Node, Spec, load_spec

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
SVG = "{http://www.w3.org/2000/svg}"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}


def layer_elements(svg: str) -> list[ET.Element]:
    root = ET.fromstring(svg)
    return [e for e in root.iter() if "layer" in e.get("class", "").split()]


def check_json(spec: Path) -> dict:
    result = CliRunner().invoke(main, ["check", "--json", str(spec)])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.parametrize("spec", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_one_element_per_layer_with_the_sizes_check_reports(spec: Path):
    svg = draw(check(load_spec(spec)))
    found = [(e.get("data-layer"), e.get("data-shape")) for e in layer_elements(svg)]
    expected = [
        (layer["name"], "x".join(map(str, layer["output_shape"])))
        for layer in check_json(spec)["layers"]
    ]
    assert sorted(found) == sorted(expected)
    assert len(found) == len({name for name, _ in found})


def test_lenet5_reads_like_the_lenet5_figure():
    svg = draw(check(load_spec(SPECS / "lenet5.yaml")))
    root = ET.fromstring(svg)
    tags = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "tag" and t.text]
    assert tags[1:] == [
        "INPUT: 1@32x32",
        "C1: 6@28x28",
        "S2: 6@14x14",
        "C3: 16@10x10",
        "S4: 16@5x5",
        "F5: 120",
        "F6: 84",
        "OUTPUT: 10",
    ]
    ops = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "op"]
    assert ops == ["conv 5x5", "max pool 2x2", "conv 5x5", "max pool 2x2"] + ["full connection"] * 3
    blocks = {e.get("data-layer"): e for e in layer_elements(svg) if "block" in e.get("class")}
    planes = {name: len(list(e.iter(f"{SVG}rect"))) for name, e in blocks.items()}
    assert planes == {"conv1": 6, "pool1": 6, "conv2": 8, "pool2": 8, "fc1": 1, "fc2": 1, "fc3": 1}
    # the flatten is written on the arrow into F5, the activations under their block
    roles = {e.get("data-layer"): e.get("class") for e in layer_elements(svg)}
    assert roles["flatten1"] == "layer before" and roles["relu1"] == "layer after"


def test_the_readme_picture_is_what_draw_draws_today():
    """docs/lenet5.svg is shown in the README; regenerate with lenetc draw specs/lenet5.yaml."""
    today = draw(check(load_spec(SPECS / "lenet5.yaml")))
    assert (ROOT / "docs" / "lenet5.svg").read_text() == today


def _node(name, type_, inputs, **args) -> Node:
    return Node(name, type_, args, tuple(inputs), 1, {}, False)


def graph_trace() -> ShapeTrace:
    """stem -> residual block (add) -> two branches side by side (cat) -> classifier."""
    s16, s8 = (16, 16, 16), (8, 16, 16)
    conv = {"kernel_size": (3, 3), "stride": (1, 1)}
    rows = [
        (_node("conv0", "conv2d", [INPUT], **conv), (3, 16, 16), s16, 448),
        (_node("stem", "relu", ["conv0"]), s16, s16, 0),
        (_node("conv_a", "conv2d", ["stem"], **conv), s16, s16, 2320),
        (_node("bn_a", "batch_norm2d", ["conv_a"]), s16, s16, 32),
        (_node("relu_a", "relu", ["bn_a"]), s16, s16, 0),
        (_node("conv_b", "conv2d", ["relu_a"], **conv), s16, s16, 2320),
        (_node("bn_b", "batch_norm2d", ["conv_b"]), s16, s16, 32),
        (_node("join", "add", ["bn_b", "stem"]), s16, s16, 0),
        (_node("relu_j", "relu", ["join"]), s16, s16, 0),
        (_node("left", "conv2d", ["relu_j"], **conv), s16, s8, 1160),
        (_node("right", "conv2d", ["relu_j"], kernel_size=(1, 1), stride=(1, 1)), s16, s8, 136),
        (_node("both", "cat", ["left", "right"]), s8, s16, 0),
        (_node("flat", "flatten", ["both"]), s16, (4096,), 0),
        (_node("fc", "linear", ["flat"]), (4096,), (10,), 40970),
    ]
    spec = Spec("resnetish", "Resnetish", (3, 16, 16), tuple(r[0] for r in rows),
                None, None, None, "resnetish.yaml", ROOT, "0" * 64)  # fmt: skip
    nodes = tuple(TracedNode(n, i, Inferred(out_shape=o, params=p)) for n, i, o, p in rows)
    return ShapeTrace(spec, nodes)


def test_a_graph_draws_branches_side_by_side_and_joins():
    trace = graph_trace()
    figure = layout(trace)
    svg = draw(trace)
    assert sorted(e.get("data-layer") for e in layer_elements(svg)) == sorted(
        t.node.name for t in trace.nodes
    )
    blocks = {b.id: b for b in figure.blocks}
    assert list(blocks) == [INPUT, "conv0", "conv_a", "conv_b", "join", "left", "right", "both",
                            "fc"]  # fmt: skip
    # elementwise ops belong to the block they follow; the flatten to the arrow into fc
    assert [m.name for m in blocks["conv0"].after] == ["stem"]
    assert [m.name for m in blocks["conv_b"].after] == ["bn_b"]
    assert [m.name for m in figure.befores] == ["flat"]
    # the two branches share a column, one above the other
    left, right = blocks["left"], blocks["right"]
    assert left.x == right.x and left.y + left.h < right.y
    # a column per depth, left to right
    order = ["conv0", "conv_a", "conv_b", "join", "left", "both", "fc"]
    assert [blocks[b].x for b in order] == sorted(blocks[b].x for b in order)
    # joins: two arrows end at the add and at the cat; the residual one skips over two blocks
    ends = [e.path.rsplit(" ", 1)[-1].lstrip("HC") for e in figure.edges]
    into = {b: sum(str(blocks[b].x - 4) in end for end in ends) for b in ("join", "both", "fc")}
    assert into == {"join": 2, "both": 2, "fc": 1}
    assert sum(e.skip for e in figure.edges) == 1
    assert blocks["join"].tag.startswith("A") and blocks["both"].tag.startswith("K")


_PROBE = """
import sys
from lenetc.cli import main
try:
    main([{args}])
except SystemExit as exit:
    code = exit.code
print("HEAVY", sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "onnx",
      "onnxruntime", "numpy")), "EXIT", code, file=sys.stderr)
"""


def test_draw_never_imports_torch_and_writes_the_file(tmp_path: Path):
    out = tmp_path / "net.svg"
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE.format(args=f"'draw', 'specs/lenet5.yaml', '-o', '{out}'")],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.stderr.strip().splitlines()[-1] == "HEAVY [] EXIT 0", proc.stderr
    assert out.read_text() == draw(check(load_spec(SPECS / "lenet5.yaml")))


def test_draw_prints_svg_and_a_bad_spec_exits_2():
    ok = CliRunner().invoke(main, ["draw", str(SPECS / "lenet5.yaml")])
    assert ok.exit_code == 0 and ok.output.startswith("<svg ")
    bad = CliRunner().invoke(main, ["draw", str(SPECS / "invalid" / "in_features_wrong.yaml")])
    assert bad.exit_code == 2 and "in_features" in bad.output and "Traceback" not in bad.output


def test_help_lists_draw_report_and_serve():
    result = CliRunner().invoke(main, ["--help"])
    for command in ("draw", "report", "serve"):
        assert f"  {command} " in result.output
