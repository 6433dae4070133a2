"""Stage 5, export (C self-test): io.npz -> c/selftest.c, the golden samples compiled in.

Takes the build folder (after the golden I/O bundle and c/ are written) and the spec; renders
selftest.c with targets/c/selftest.py from io.npz's inputs, outputs and labels and the spec's
verify tolerances, and writes it atomically beside model.c. Returns its path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..artifacts import BuildDir, write_text
from ..check.shapes import check
from ..spec.load import Spec
from ..targets.c.selftest import FILE, render_selftest


def export_selftest(out: BuildDir, spec: Spec) -> Path:
    with np.load(out.io_npz) as io:
        text = render_selftest(
            check(spec), io["input"], io["output"], io["label"], spec.verify.atol, spec.verify.rtol
        )
    path = out.c_dir / FILE
    write_text(path, text)
    return path
