"""report.html in a real headless Chromium (the system's, driven by playwright-core from js/).

One browser launch for the whole module (js/look_check.mjs visits every page and prints JSON):
- the report served by lenetc serve, and opened as a file: no console errors, no request that
  leaves the machine;
- the drawing: one element per layer with the sizes `check --json` reports, for LeNet-5 and a
  graph (the synthetic one of test_look_draw.py, and every spec in specs/ with a join once graph
  specs land);
- the parity table in the page equals verify.json;
- the live panel: a held-out test image's pixels on the canvas give the same top class and
  probabilities (within 1e-4) as onnxruntime in Python on the same normalized input; a mouse
  stroke classifies; Clear works from the keyboard;
- served without the npm package, the panel says how to get it and the page still loads.
Needs node, chromium and `make deps` (tests/tools.py): a missing one skips, or fails in CI.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from test_look_draw import graph_trace
from tools import require_node_modules, require_tool

from lenetc.check.shapes import check
from lenetc.cli import main
from lenetc.look.draw import draw
from lenetc.look.serve import serve_in_thread, url
from lenetc.spec.load import load_spec

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"  # require_tool("chromium") checks it
SAMPLE = 5  # the held-out test image drawn onto the panel


def graph_specs() -> list[Path]:
    """The specs in specs/ whose layers name several inputs (add, cat), once graphs have landed."""
    return [
        spec
        for spec in sorted((ROOT / "specs").glob("*.yaml"))
        if any(len(t.node.inputs) > 1 for t in check(load_spec(spec)).nodes)
    ]


def run_pages(pages: list[dict], job_file: Path) -> list[dict]:
    job_file.write_text(json.dumps({"chromium": CHROMIUM, "pages": pages}))
    proc = subprocess.run(
        ["node", str(ROOT / "js" / "look_check.mjs"), str(job_file)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)["pages"]


def pixels_of(x: np.ndarray, mean: float, std: float, lo: float, hi: float) -> np.ndarray:
    """A normalized (1, H, W) sample -> the 0..255 pixels the panel's canvas holds."""
    raw = x[0].astype(np.float64) * std + mean
    return np.clip(np.rint((raw - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)


def panel_input(pixels: np.ndarray, mean: float, std: float, lo: float, hi: float) -> np.ndarray:
    """What the panel feeds the model for these pixels: as panel.js.j2 computes it."""
    raw = lo + (pixels.astype(np.float64) / 255) * (hi - lo)
    return ((raw - mean) / std).astype(np.float32)[None, None]


@pytest.fixture(scope="module")
def visit(lenet_build, tmp_path_factory, monkeypatch_module):
    require_tool("chromium")
    require_node_modules("playwright-core")
    tmp = tmp_path_factory.mktemp("browser")
    (tmp / "graph.svg").write_text(draw(graph_trace()))
    graphs = graph_specs()
    for spec in graphs:
        (tmp / f"{spec.stem}.svg").write_text(draw(check(load_spec(spec))))
    session = ort.InferenceSession(str(lenet_build.onnx), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    norm = (
        json.loads(meta["normalization_mean"])[0],
        json.loads(meta["normalization_std"])[0],
        *json.loads(meta["input_range"]),
    )
    with np.load(lenet_build.heldout) as held:
        pixels = pixels_of(held["x"][SAMPLE], *norm)
    logits = session.run(None, {meta["input_name"]: panel_input(pixels, *norm)})[0][0]
    expected = np.exp(logits.astype(np.float64) - logits.max())
    expected /= expected.sum()

    server, thread = serve_in_thread(lenet_build.root)
    monkeypatch_module.setenv("LENETC_ORT_WEB", str(tmp / "no-runtime"))
    bare, bare_thread = serve_in_thread(lenet_build.root)
    monkeypatch_module.delenv("LENETC_ORT_WEB")
    try:
        served, as_file, graph, without, *drawn = run_pages(
            [
                {"url": url(server), "panel": True, "pixels": pixels.ravel().tolist(),
                 "mouse": True, "screenshot": str(tmp / "report.png")},
                {"url": lenet_build.report.as_uri(), "panel": True},
                {"url": (tmp / "graph.svg").as_uri()},
                {"url": url(bare), "panel": True},
            ] + [{"url": (tmp / f"{spec.stem}.svg").as_uri()} for spec in graphs],
            tmp / "job.json",
        )  # fmt: skip
    finally:
        for s, t in ((server, thread), (bare, bare_thread)):
            s.shutdown()
            s.server_close()
            t.join(timeout=10)
    return {"served": served, "file": as_file, "graph": graph, "without": without,
            "graph_specs": dict(zip(graphs, drawn)),
            "expected": expected, "meta": dict(meta),
            "origin": url(server).removesuffix("report.html"),
            "screenshot": tmp / "report.png"}  # fmt: skip


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_no_console_errors_and_no_request_leaves_the_machine(visit):
    pages = [visit["served"], visit["file"], visit["graph"], visit["without"]]
    for page in pages + list(visit["graph_specs"].values()):
        assert page["console_errors"] == [], page["url"]
    served = visit["served"]["requests"]
    assert all(r.startswith(visit["origin"]) for r in served), served
    assert {r.removeprefix(visit["origin"]) for r in served} >= {
        "report.html", "_lenetc/runtime.json", "model.onnx", "_lenetc/ort/ort.wasm.min.js",
    }  # fmt: skip
    local = visit["file"]["requests"] + visit["graph"]["requests"]
    assert all(r.startswith("file://") for r in local), local


def _check_layers(spec_layers: list[dict], page_layers: list[dict]) -> None:
    shapes = {e["name"]: e["shape"] for e in page_layers}
    assert len(page_layers) == len(shapes) == len(spec_layers)
    assert shapes == {x["name"]: "x".join(map(str, x["output_shape"])) for x in spec_layers}


def test_the_drawing_has_one_element_per_layer_with_check_sizes(visit):
    lenet = json.loads(CliRunner().invoke(main, ["check", "--json", "specs/lenet5.yaml"]).output)
    _check_layers(lenet["layers"], visit["served"]["layers"])
    blocks = {e["name"]: e["text"] for e in visit["served"]["layers"] if e["role"] == "block"}
    assert blocks["conv1"] == "C1: 6@28x28" and blocks["pool2"] == "S4: 16@5x5"
    assert blocks["fc3"] == "OUTPUT: 10"
    graph = graph_trace()
    _check_layers(
        [{"name": t.node.name, "output_shape": list(t.out_shape)} for t in graph.nodes],
        visit["graph"]["layers"],
    )
    for spec, page in visit["graph_specs"].items():  # empty until graph specs land in specs/
        report = json.loads(CliRunner().invoke(main, ["check", "--json", str(spec)]).output)
        _check_layers(report["layers"], page["layers"])


def test_the_parity_table_equals_verify_json(lenet_build, visit):
    verify = json.loads(lenet_build.verify_json.read_text())
    rows = visit["served"]["parity"]
    expected = []
    for r in verify["runtimes"]:
        for o in r["outputs"] or [None]:
            expected.append((r["runtime"], r["artifact"], o["output"] if o else "-", r["status"]))
    assert [(r["runtime"], r["artifact"], r["output"], r["status"]) for r in rows] == expected
    by_row = {(r["runtime"], r["output"]): r for r in rows}
    for r in verify["runtimes"]:
        for o in r["outputs"]:
            cells = by_row[(r["runtime"], o["output"])]["cells"]
            assert cells["max_abs"]["value"] == o["max_abs"]
            assert cells["max_abs"]["text"] == f"{o['max_abs']:.1e}"
            assert cells["max_rel"]["value"] == o["max_rel"]
            assert cells["min_atol"]["value"] == o["min_atol"]
            assert cells["argmax"]["value"] == o["argmax_agreement"]
            assert cells["accuracy"]["value"] == o["accuracy"]
            result = by_row[(r["runtime"], o["output"])]["result"]
            assert result == ("PASS" if o["passed"] else "FAIL")


def test_the_panel_classifies_a_test_image_as_onnxruntime_in_python_does(visit):
    page, expected = visit["served"], visit["expected"]
    assert page["ready"] is True, page["status"]
    assert "ONNX Runtime Web 1.31.1" in page["status"]
    got = np.array(page["probabilities"])
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-4, np.abs(got - expected).max()
    assert int(page["top"]) == int(expected.argmax())
    assert page["bars"] == page["probabilities"]  # the bars show what the model returned
    meta = visit["meta"]  # read by the page from model.onnx's bytes, as onnxruntime reads it
    assert page["metadata"]["labels"] == json.loads(meta["class_labels"])
    assert page["metadata"]["mean"] == json.loads(meta["normalization_mean"])
    assert page["metadata"]["std"] == json.loads(meta["normalization_std"])
    assert page["metadata"]["range"] == json.loads(meta["input_range"])
    assert (page["metadata"]["input"], page["metadata"]["output"]) == (
        meta["input_name"],
        meta["output_name"],
    )


def test_the_panel_draws_with_the_mouse_and_clears_from_the_keyboard(visit):
    page = visit["served"]
    assert page["mouse_ink"] > 20
    assert len(page["mouse_bars"]) == 10 and abs(sum(page["mouse_bars"]) - 1) < 1e-6
    assert page["after_clear"] == {"bars": 0, "top": "-", "ink": 0}


def test_without_a_server_or_the_runtime_the_panel_says_how(visit):
    assert visit["file"]["ready"] is False
    assert "lenetc serve" in visit["file"]["status"]
    assert visit["without"]["ready"] is False
    assert "make deps" in visit["without"]["status"]
    assert visit["without"]["parity"] == visit["served"]["parity"]  # the rest of the page works


def test_a_screenshot_of_the_report(visit):
    png = visit["screenshot"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (1280, 900)
    assert (ROOT / "docs" / "report.png").read_bytes()[:8] == png[:8]  # kept for the README
