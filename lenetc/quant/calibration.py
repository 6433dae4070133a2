"""Quantize (calibration): the training split -> the float32 samples the calibrator sees.

Takes the build's Dataset (normalized, as the model sees it) and the quantize: config; returns the
first `samples` training samples (the split is already shuffled by its seed; never validation or
test data). Too few samples, or a NaN / infinity among them, is one RuntimeFailure line (exit 1)
naming the spec line, what was asked and what was found.
"""

from __future__ import annotations

import numpy as np

from ..errors import RuntimeFailure
from ..spec.config import QuantizeConfig


def calibration_samples(x_train, cfg: QuantizeConfig, spec_path: str) -> np.ndarray:
    where = f"{spec_path}:{cfg.samples_line}" if cfg.samples_line else spec_path
    have = len(x_train)
    if have < cfg.samples:
        raise RuntimeFailure(
            f"{where}: quantize.calibration.samples is {cfg.samples}, but the training split has "
            f"{have} samples; hint: set samples: {have} or fewer"
        )
    x = np.asarray(x_train[: cfg.samples], dtype=np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise RuntimeFailure(
            f"{where}: calibration sample {row} of the training split holds "
            f"{int(bad.sum())} NaN or infinite values; hint: clean the dataset, the calibrator's "
            "ranges would be NaN"
        )
    return x
