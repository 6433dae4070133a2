"""scripts/gpu_check.py on a machine without CUDA: it says what it found and exits 0, cleanly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA here: run the script itself")
def test_gpu_check_without_cuda_says_so_and_exits_0():
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("[gpu_check] python ")
    assert any(line.startswith("[gpu_check] onnxruntime ") for line in lines)
    assert lines[-1].startswith("[gpu_check] CUDA unavailable: ")
    assert lines[-1].endswith("Nothing to check on this machine; exiting 0.")
    assert "Traceback" not in done.stderr
