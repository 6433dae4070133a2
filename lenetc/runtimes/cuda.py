"""Runtimes (cuda): whether CUDA can be used here, and if not why; full float32 on CUDA.

Asked of the driver (libcuda) for ONNX Runtime's provider, and of torch for the torch family, so
that "unavailable" always comes with the reason a user can act on.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator

import torch

# TF32 rounds float32 matmul/conv inputs to 10 mantissa bits (~1e-3 relative); the parity proof is
# about float32, so every CUDA runtime runs with it off (the README's verify section says why).
CUDA_PROVIDER_OPTIONS = {"use_tf32": "0"}


def cuda_device_problem() -> str | None:
    """Why no CUDA device can be used here, or None when one can. Asks the driver, not torch."""
    if torch.cuda.is_available():
        return None
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no CUDA device (no NVIDIA driver: libcuda.so.1 cannot be loaded)"
    count = ctypes.c_int(0)
    status = libcuda.cuInit(0)
    if status != 0:
        return f"no CUDA device (the driver's cuInit returned error {status})"
    if libcuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
        return "no CUDA device (the driver reports 0 devices)"
    return None


def torch_cuda_problem() -> str | None:
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is built without CUDA"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device"
    return None


@contextlib.contextmanager
def full_float32() -> Iterator[None]:
    """Run CUDA convolutions and matmuls in full float32 (no TF32), restoring the settings."""
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
