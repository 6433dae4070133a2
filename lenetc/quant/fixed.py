"""Quantize (fixed point): gemmlowp / TFLite integer requantization, in numpy, bit for bit.

Takes int32 accumulators and a real multiplier; returns what TFLite's reference kernels and the
C target's int8 variant compute: `quantized_multiplier` (M -> a Q31 multiplier and a shift, once,
in Python) and `multiply_by_quantized_multiplier` (SaturatingRoundingDoublingHighMul, then
RoundingDivideByPOT: round half away from zero, no float). templates/c/int8/ writes the same
functions in C; tests/test_int8.py holds both to gemmlowp's worked cases.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def quantized_multiplier(real: float) -> tuple[int, int]:
    """A real multiplier -> (m0, shift) with real ~= m0 * 2**(shift - 31), m0 in [2**30, 2**31)."""
    if real <= 0.0:
        return 0, 0
    q, shift = math.frexp(real)  # real = q * 2**shift, q in [0.5, 1)
    m0 = int(math.floor(q * (1 << 31) + 0.5))  # TfLiteRound: half away from zero (q > 0)
    if m0 == 1 << 31:
        m0 //= 2
        shift += 1
    if shift < -31:  # too small to matter: zero, as TFLite does
        return 0, 0
    return m0, shift


def saturate32(x: np.ndarray) -> np.ndarray:
    return np.clip(x, INT32_MIN, INT32_MAX).astype(np.int64)


def srdhm(a: np.ndarray, b) -> np.ndarray:
    """SaturatingRoundingDoublingHighMul(a, b) over int32 values held in int64 (b broadcasts)."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    total = ab + nudge
    high = np.sign(total) * (np.abs(total) >> 31)  # C's division: truncation toward zero
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    return np.where(overflow, np.int64(INT32_MAX), high)


def rounding_divide_by_pot(x: np.ndarray, exponent) -> np.ndarray:
    """RoundingDivideByPOT: x / 2**exponent, ties away from zero (exponent broadcasts)."""
    x, exponent = np.asarray(x, np.int64), np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0).astype(np.int64)
    return (x >> exponent) + (remainder > threshold).astype(np.int64)


def multiply_by_quantized_multiplier(x: np.ndarray, m0, shift) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier; the left shift saturates to int32 (as the C does).
    m0 and shift are scalars or per-channel arrays that broadcast against x."""
    shift = np.asarray(shift, np.int64)
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    shifted = saturate32(np.asarray(x, np.int64) << left)
    return rounding_divide_by_pot(srdhm(shifted, m0), right)
