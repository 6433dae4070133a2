"""report.html and lenetc serve, without a browser: what the page holds, that it is written by every
build and by `lenetc report`, that it needs nothing from the network, that user-derived strings
are escaped, and that `lenetc serve` answers on 127.0.0.1 only and stops. (The browser tests are
tests/test_look_browser.py.)"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from lenetc.cli import main
from lenetc.look.report import render_report
from lenetc.look.serve import serve_in_thread, url

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def html(lenet_build) -> str:
    return lenet_build.report.read_text(encoding="utf-8")


def test_every_build_writes_the_report_outside_the_manifest(lenet_build, html):
    assert html.startswith("<!DOCTYPE html>")
    manifest = json.loads(lenet_build.manifest.read_text())
    assert "report.html" not in manifest["artifacts"]
    assert "model.onnx" in manifest["artifacts"]
    for name, entry in manifest["artifacts"].items():  # the hashes the page shows
        assert f"<td>{name}</td>" in html and entry["sha256"] in html


def test_the_page_is_self_contained(html):
    """Inline CSS, SVG, images and data: no reference to anything outside the page's origin."""
    refs = re.findall(r"""(?:src|href|action)\s*=\s*["']([^"']+)""", html)
    assert refs and all(r.startswith(("#", "data:image/png;base64,")) for r in refs), refs
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", html)
    assert "<link" not in html and "@import" not in html
    assert "default-src 'self'" in html  # the CSP keeps the panel's requests on the origin


def test_the_confusion_matrix_is_onnxruntime_on_the_test_split(lenet_build, html):
    with np.load(lenet_build.heldout) as held:
        x, y = held["x"], held["y"]
    session = ort.InferenceSession(str(lenet_build.onnx), providers=["CPUExecutionProvider"])
    pred = session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0].argmax(1)
    table = html.split('<table class="confusion">')[1].split("</table>")[0]
    rows = [[int(v) for v in re.findall(r"<td[^>]*>(\d+)</td>", tr)] for tr in table.split("<tr>")]
    matrix = np.array([r for r in rows if r])
    expected = np.zeros((10, 10), dtype=int)
    np.add.at(expected, (y, pred), 1)
    assert (matrix == expected).all()
    wrong = int((pred != y).sum())
    assert html.count('<li><img src="data:image/png;base64,') == min(wrong, 32)
    assert f"gets {len(y) - wrong} of {len(y)} held-out test samples right" in html


def test_curves_have_one_point_per_epoch(lenet_build, html):
    epochs = len(lenet_build.metrics.read_text().splitlines())
    lines = re.findall(r'data-series="(\w+)" points="([^"]*)"', html)
    assert [name for name, _ in lines] == ["train", "val", "train", "val", "lr"]
    assert all(len(points.split()) == epochs for _, points in lines)


def test_lenetc_report_rewrites_it_and_escapes_what_users_wrote(lenet_build, tmp_path):
    folder = tmp_path / "lenet5"
    shutil.copytree(lenet_build.root, folder)
    verify = json.loads((folder / "verify.json").read_text())
    verify["runtimes"][-1]["status"] = "unavailable"
    verify["runtimes"][-1]["outputs"] = []
    verify["runtimes"][-1]["reason"] = "<script>alert(1)</script> & co"
    (folder / "verify.json").write_text(json.dumps(verify))
    (folder / "report.html").unlink()
    result = CliRunner().invoke(main, ["report", str(folder)])
    assert result.exit_code == 0 and result.output == f"wrote {folder / 'report.html'}\n"
    page = (folder / "report.html").read_text()
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page


def test_a_folder_without_a_build_is_one_line_exit_1(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 1
    expected = f"error: {tmp_path} has no spec.yaml; is it a lenetc build folder?"
    assert result.output.strip() == expected


def test_missing_parts_are_said_not_fatal(lenet_build, tmp_path):
    folder = tmp_path / "lenet5"
    shutil.copytree(lenet_build.root, folder)
    for name in ("verify.json", "manifest.json", "metrics.jsonl", "heldout.npz"):
        (folder / name).unlink()
    page = render_report(folder)
    assert "No verify.json in this folder" in page and "No manifest.json" in page
    assert "No metrics.jsonl" in page and "no heldout.npz or model.onnx in this folder" in page


def _get(address: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(address, timeout=10) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, b"", ""


def test_the_server_serves_the_folder_and_the_runtime_on_loopback_only(lenet_build, monkeypatch):
    server, thread = serve_in_thread(lenet_build.root)
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        base = url(server).removesuffix("report.html")
        status, body, _ = _get(base + "report.html")
        assert status == 200 and body == lenet_build.report.read_bytes()
        status, body, kind = _get(base + "_lenetc/runtime.json")
        runtime = json.loads(body)
        assert status == 200 and kind == "application/json"
        if runtime["available"]:
            status, _, kind = _get(base + runtime["base"] + "ort-wasm-simd-threaded.wasm")
            assert (status, kind) == (200, "application/wasm")
        assert _get(base + "_lenetc/ort/../../package.json")[0] == 404
        assert _get(base + "_lenetc/ort/%2e%2e%2fpackage.json")[0] == 404
        assert _get(base)[0] == 404  # no listings
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_without_the_npm_package_the_panel_says_how_to_get_it(lenet_build, monkeypatch, tmp_path):
    monkeypatch.setenv("LENETC_ORT_WEB", str(tmp_path / "nowhere"))
    server, thread = serve_in_thread(lenet_build.root)
    try:
        address = url(server).removesuffix("report.html") + "_lenetc/runtime.json"
        runtime = json.loads(_get(address)[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert runtime["available"] is False and "make deps" in runtime["message"]


def test_lenetc_serve_prints_its_address_and_stops_on_ctrl_c(lenet_build):
    proc = subprocess.Popen(
        [sys.executable, "-m", "lenetc", "serve", str(lenet_build.root), "--port", "0"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        match = re.match(r"serving \S+ at (http://127\.0\.0\.1:\d+/report\.html) ", line)
        assert match, line
        assert _get(match.group(1))[0] == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


MLP = """\
name: tiny_mlp
input: {shape: [8]}
layers:
  - {type: linear, out_features: 16}
  - {type: relu}
  - {type: linear, out_features: 3}
train:
  dataset: {name: synthetic, samples: 200, num_classes: 3}
  epochs: 2
  batch_size: 32
  seed: 1
verify: {providers: [cpu], batch_sizes: [2]}
"""


@pytest.mark.slow
def test_a_build_ends_by_naming_its_report_even_for_a_model_that_takes_no_image(tmp_path):
    """make demo's last line names the report; an MLP's report has no images and no panel."""
    (tmp_path / "mlp.yaml").write_text(MLP)
    result = CliRunner().invoke(main, ["build", str(tmp_path / "mlp.yaml"), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = tmp_path / "tiny_mlp" / "report.html"
    assert result.stdout.splitlines()[-1] == f"report: {report}"
    page = report.read_text()
    assert "the live panel draws one grayscale image; this model takes (8)" in page
    assert "<canvas" not in page and "<li><img" not in page
    assert 'class="confusion"' in page and 'data-layer="fc2"' in page


def test_the_python_embedding_snippet_in_the_page_runs(lenet_build, html):
    """The page's commands are meant to be pasted: the Python one must run as printed."""
    import html as html_lib

    snippets = re.findall(r"<pre><code>(.*?)</code></pre>", html, re.S)
    python = next(html_lib.unescape(s) for s in snippets if s.startswith("import json"))
    proc = subprocess.run([sys.executable, "-c", python], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() in [str(i) for i in range(10)]


def test_png_data_uris_hold_the_pixels():
    import base64
    import zlib

    from lenetc.look.charts import png_gray

    gray = np.arange(12, dtype=float).reshape(3, 4) * 20
    rgb = np.stack([gray, 255 - gray, gray / 2])
    for image, channels in ((gray, 1), (rgb, 3)):
        png = base64.b64decode(png_gray(image).removeprefix("data:image/png;base64,"))
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
        idat = png.index(b"IDAT")
        length = int.from_bytes(png[idat - 4 : idat], "big")
        rows = zlib.decompress(png[idat + 4 : idat + 4 + length])
        stride = 1 + 4 * channels
        pixels = np.frombuffer(rows, np.uint8).reshape(3, stride)[:, 1:]
        expected = image if channels == 1 else image.transpose(1, 2, 0).reshape(3, 12)
        assert (pixels.reshape(expected.shape) == np.rint(expected)).all()
