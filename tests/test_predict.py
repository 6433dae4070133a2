"""`lenetc predict`: the exported ONNX on .npy and Netpbm files, fed from its own metadata."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from lenetc.cli import main
from lenetc.export.onnx_meta import read

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def golden(lenet_build):
    io = np.load(lenet_build.io_npz)
    session = ort.InferenceSession(str(lenet_build.onnx), providers=["CPUExecutionProvider"])
    info = read(session.get_modelmeta().custom_metadata_map)
    return io, info, session


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _predict(*args: str):
    result = CliRunner().invoke(main, ["predict", *args])
    return result.exit_code, result.output


def test_raw_batch_is_normalized_from_metadata(lenet_build, golden, tmp_path):
    io, info, _ = golden
    raw = io["input"][:5] * info.std[0] + info.mean[0]  # what a user has: unnormalized samples
    np.save(tmp_path / "raw.npy", raw)
    code, out = _predict(str(lenet_build.root), str(tmp_path / "raw.npy"), "--json")
    assert code == 0, out
    rows = json.loads(out)
    want = _softmax(io["output"][:5].astype(np.float64))
    assert [r["label"] for r in rows] == [info.labels[i] for i in want.argmax(axis=1)]
    got = np.array([[r["probabilities"][label] for label in info.labels] for r in rows])
    assert np.abs(got - want).max() < 1e-5
    assert [r["input"] for r in rows] == [f"{tmp_path / 'raw.npy'}[{i}]" for i in range(5)]


def test_single_normalized_sample_prints_label_and_probabilities(lenet_build, golden, tmp_path):
    io, info, _ = golden
    np.save(tmp_path / "one.npy", io["input"][0])  # (1, 32, 32): one sample, no batch axis
    code, out = _predict(str(lenet_build.root), str(tmp_path / "one.npy"), "--normalized")
    assert code == 0, out
    p = _softmax(io["output"][:1].astype(np.float64))[0]
    k = int(p.argmax())
    assert out.startswith(f"{tmp_path / 'one.npy'}: {info.labels[k]} ({p[k]:.2%})  ")
    assert f"{info.labels[k]}: {p[k]:.4f}" in out and len(out.strip().splitlines()) == 1


def _pgm(path: Path, pixels: np.ndarray, binary: bool) -> None:
    h, w = pixels.shape
    if binary:
        path.write_bytes(
            f"P5\n# digit\n{w} {h}\n255\n".encode() + pixels.astype(np.uint8).tobytes()
        )
    else:
        body = "\n".join(" ".join(str(v) for v in row) for row in pixels)
        path.write_text(f"P2\n{w} {h}\n255\n{body}\n")


@pytest.mark.parametrize("binary", [True, False])
def test_pgm_image_maps_pixels_onto_input_range(lenet_build, golden, tmp_path, binary):
    io, info, session = golden
    raw = io["input"][0, 0] * info.std[0] + info.mean[0]
    lo, hi = info.input_range
    pixels = np.clip(np.round((raw - lo) / (hi - lo) * 255), 0, 255).astype(np.int64)
    _pgm(tmp_path / "digit.pgm", pixels, binary)
    code, out = _predict(str(lenet_build.root), str(tmp_path / "digit.pgm"), "--json")
    assert code == 0, out
    x = ((lo + pixels / 255 * (hi - lo)) - info.mean[0]) / info.std[0]
    want = _softmax(session.run(None, {"input": x[None, None].astype(np.float32)})[0])[0]
    got = np.array([json.loads(out)[0]["probabilities"][label] for label in info.labels])
    assert np.abs(got - want).max() < 1e-5
    assert json.loads(out)[0]["label"] == info.labels[int(io["output"][0].argmax())]


def test_wrong_shape_missing_file_and_bad_type_are_one_line_exit_2(lenet_build, tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((3, 28, 28), np.float32))
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    (tmp_path / "x.gif").write_bytes(b"GIF89a")
    cases = {
        "bad.npy": "bad.npy: shape (3, 28, 28) is neither one sample (1 x 32 x 32) nor a batch "
        "(N x 1 x 32 x 32)",
        "nope.npy": "nope.npy: no such file",
        "x.png": "x.png: not a readable image (",  # Pillow's word (tests/test_hostile.py)
        "x.gif": "x.gif: unsupported file type '.gif'; use .npy, .pgm, .ppm, .pnm, .png, .jpg",
    }
    for name, message in cases.items():
        code, out = _predict(str(lenet_build.root), str(tmp_path / name))
        assert code == 2, out
        assert len(out.strip().splitlines()) == 1 and message in out, out


def test_build_without_model_onnx_is_exit_1(lenet_build, tmp_path):
    folder = tmp_path / "b"
    folder.mkdir()
    np.save(tmp_path / "one.npy", np.zeros((1, 32, 32), np.float32))
    code, out = _predict(str(folder), str(tmp_path / "one.npy"))
    assert (
        code == 1 and out.strip() == f"error: {folder} has no model.onnx; run `lenetc build` first"
    )


def test_onnx_without_lenetc_metadata_is_exit_1(lenet_build, tmp_path):
    import onnx

    folder = tmp_path / "b"
    folder.mkdir()
    model = onnx.load(str(lenet_build.onnx))
    del model.metadata_props[:]
    onnx.save(model, str(folder / "model.onnx"))
    np.save(tmp_path / "one.npy", np.zeros((1, 32, 32), np.float32))
    code, out = _predict(str(folder), str(tmp_path / "one.npy"))
    assert code == 1 and "has no lenetc metadata" in out and "was it exported by lenetc?" in out


def test_predict_on_a_lone_model_onnx_never_imports_torch(lenet_build, tmp_path):
    """A folder holding only model.onnx runs on onnxruntime alone. (In a build folder, predict
    first runs verify's integrity checks, which read weights.pt with torch.)"""
    build = tmp_path / "b"
    build.mkdir()
    shutil.copy(lenet_build.onnx, build / "model.onnx")
    np.save(tmp_path / "one.npy", np.load(lenet_build.io_npz)["input"][0])
    code = (
        "import sys; from lenetc.cli import main\n"
        "try:\n    main(['predict', sys.argv[1], sys.argv[2], '--normalized'])\n"
        "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "assert 'torch' not in sys.modules, 'predict imported torch'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(build), str(tmp_path / "one.npy")],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"{tmp_path / 'one.npy'}: ")
