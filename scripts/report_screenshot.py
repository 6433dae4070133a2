#!/usr/bin/env python3
"""The README's picture of a report: docs/report.png, from a build folder, in headless Chromium.

Run from the repository root after `make demo` and `make deps`:
    python scripts/report_screenshot.py [build/lenet5] [docs/report.png]

Serves the folder with lenetc serve's server (127.0.0.1, any free port), draws a held-out test
image onto the live panel so that the picture shows a classification, and takes a 1280 x 1640
screenshot of the top of the page with js/look_check.mjs (the browser tests' driver).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lenetc.export.onnx_meta import read  # noqa: E402
from lenetc.look.serve import serve_in_thread, url  # noqa: E402

VIEWPORT = {"width": 1280, "height": 1640}  # the drawing, the panel, the curves, the confusion


def main() -> int:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "build/lenet5")
    target = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/report.png").resolve()
    import onnxruntime as ort

    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    info = read(session.get_modelmeta().custom_metadata_map)
    with np.load(folder / "heldout.npz") as held:
        x = held["x"][2]
    lo, hi = info.input_range
    raw = x[0].astype(np.float64) * info.std[0] + info.mean[0]
    pixels = np.clip(np.rint((raw - lo) / (hi - lo) * 255), 0, 255).astype(int)
    server, thread = serve_in_thread(folder)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            job = Path(tmp) / "job.json"
            page = {"url": url(server), "panel": True, "pixels": pixels.ravel().tolist(),
                    "screenshot": str(target), "viewport": VIEWPORT}  # fmt: skip
            job.write_text(json.dumps({"pages": [page]}))
            proc = subprocess.run(["node", str(ROOT / "js" / "look_check.mjs"), str(job)],
                                  capture_output=True, text=True, timeout=120)  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    if proc.returncode:
        print(proc.stderr, file=sys.stderr)
        return 1
    result = json.loads(proc.stdout)["pages"][0]
    print(f"wrote {target}: panel says {result.get('status')!r}; errors {result['console_errors']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
