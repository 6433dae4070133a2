"""Quantize (QDQ): the float model.onnx + calibration samples -> model.int8.onnx.

Takes the exported float ONNX and float32 calibration samples (from the training split,
calibration.py); writes the QDQ model with onnxruntime.quantization (a well-kept calibrator and
quantizer, not a hand-written one): its pre-processing folds batch norm into the convolutions
(batchnorm.py turns any other batch norm into a depthwise 1x1 convolution), then
quantize_static calibrates activations per tensor (min/max, percentile or entropy) and
quantizes weights symmetrically per output channel.

SETTINGS are chosen so that ONNX Runtime's fused int8 kernels equal the integer reference on
CPUs without VNNI: with s8s8 and full 8-bit weights, AVX2's u8 x s8 multiply (vpmaddubsw) adds
pairs of products into int16 and saturates, so QLinearConv / MatMulInteger drift from the QDQ
math by several steps (measured: logits off by 7.6, argmax flipped on 0.8% of LeNet-5's digits).
`reduce_range` keeps weights within [-64, 64] (7 bits), where a pair cannot saturate. (CPUs with
VNNI, vpdpbusd, accumulate in int32 and are exact either way.) tests/test_int8.py fails if any
of these is dropped.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path

import numpy as np

from ..artifacts import write_with
from ..errors import RuntimeFailure
from .batchnorm import batch_norm_as_conv

METHODS = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}
SETTINGS = {
    "quant_format": "QDQ",
    "activation_type": "QInt8",
    "weight_type": "QInt8",
    "per_channel": True,  # weights: one scale per output channel
    "reduce_range": True,  # 7-bit weights: no int16 saturation in AVX2 kernels (see above)
    "extra_options": {
        "WeightSymmetric": True,  # weight zero points 0: int8 weights, int32 accumulators
        # activations per tensor, asymmetric: a fused ReLU is a zero point of -128
        "ActivationSymmetric": False,
    },
}
CALIBRATION_BATCH = 64


def quantize_model(float_onnx: Path, out: Path, samples: np.ndarray, method: str) -> None:
    """model.onnx -> model.int8.onnx (written atomically), calibrated on `samples`."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, name: str) -> None:
            batches = range(0, len(samples), CALIBRATION_BATCH)
            self.batches = iter(
                [{name: samples[i : i + CALIBRATION_BATCH].astype(np.float32)} for i in batches]
            )

        def get_next(self):
            return next(self.batches, None)

    import onnx

    name = onnx.load(str(float_onnx), load_external_data=False).graph.input[0].name
    extra = dict(SETTINGS["extra_options"])
    if method == "percentile":
        extra["CalibPercentile"] = 99.999
    with tempfile.TemporaryDirectory(prefix="lenetc-int8-") as tmp, _quiet():
        folded = Path(tmp) / "folded.onnx"
        try:  # ONNX Runtime's basic graph optimizations: batch norm folded into the conv before
            quant_pre_process(str(float_onnx), str(folded), skip_symbolic_shape=True)
            batch_norm_as_conv(folded)  # what no convolution absorbed: a depthwise 1x1 conv
            quantized = Path(tmp) / "int8.onnx"
            quantize_static(
                str(folded),
                str(quantized),
                Reader(name),
                quant_format=getattr(QuantFormat, SETTINGS["quant_format"]),
                activation_type=getattr(QuantType, SETTINGS["activation_type"]),
                weight_type=getattr(QuantType, SETTINGS["weight_type"]),
                per_channel=SETTINGS["per_channel"],
                reduce_range=SETTINGS["reduce_range"],
                calibrate_method=getattr(CalibrationMethod, METHODS[method]),
                extra_options=extra,
            )
        except RuntimeFailure:
            raise
        except Exception as exc:
            why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise RuntimeFailure(f"onnxruntime.quantization could not quantize: {why}") from None
        data = quantized.read_bytes()
    write_with(out, lambda p: p.write_bytes(data))


@contextlib.contextmanager
def _quiet():
    """The quantizer prints progress and logs warnings on its own; the build speaks for it."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)
