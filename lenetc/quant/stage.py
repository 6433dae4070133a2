"""Quantize (stage): a trained, exported build -> model.int8.onnx and calibration.npz.

Takes the build folder (after export wrote model.onnx), the spec's quantize: config and the
training split; writes model.int8.onnx (qdq.py) and calibration.npz (the calibration samples
verify measures each layer's SQNR on, at most SQNR_SAMPLES of them); returns a one-line summary.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..artifacts import BuildDir, write_with
from ..check.shapes import check
from ..spec.load import Spec
from .c_export import write_c_int8
from .calibration import calibration_samples
from .params import load_quant_model
from .qdq import quantize_model

SQNR_SAMPLES = 256


def write_int8(out: BuildDir, spec: Spec, x_train) -> str:
    cfg = spec.quantize
    x = calibration_samples(x_train, cfg, spec.path)
    quantize_model(out.onnx, out.int8_onnx, x, cfg.method)
    keep = x[:SQNR_SAMPLES]
    write_with(out.calibration, lambda p: _save(p, keep))
    f, q = out.onnx.stat().st_size, out.int8_onnx.stat().st_size
    said = (
        f"quantized to int8 ({cfg.method} calibration on {len(x)} training samples): "
        f"{out.int8_onnx.name} {q:,} bytes = {q / f:.2f}x {out.onnx.name}"
    )
    if out.c_dir.is_dir():
        why = write_c_int8(out, load_quant_model(out.int8_onnx, check(spec)))
        said += "; c/model_int8.c" if why is None else f"; no c/model_int8.c: {why}"
    return said


def _save(path: Path, x: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, x=x)
