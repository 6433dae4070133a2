"""Runtime onnxruntime-web[node|chromium]: model.onnx in ONNX Runtime Web (wasm), two hosts.

`[node]` runs examples/node/classify.js on onnxruntime-web's wasm backend in Node.js;
`[chromium]` runs examples/browser/index.html in a real headless Chromium page, served from
127.0.0.1 by examples/browser/run_headless.js (playwright-core). Each: one process for all cases.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .onnx_model import OnnxModelRuntime
from .onnxruntime_node import OnnxRuntimeNode, node_problem
from .process import OnnxProgramRuntime, examples_dir, node_modules
from .registry import RuntimeKind, register


class OnnxRuntimeWebNode(OnnxRuntimeNode):
    name = "onnxruntime-web[node]"
    package = "onnxruntime-web"


def chromium() -> str | None:
    return (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )


class OnnxRuntimeWebChromium(OnnxProgramRuntime, OnnxModelRuntime):
    name = "onnxruntime-web[chromium]"
    timeout = 180.0

    def unavailable(self) -> str | None:
        why = node_problem("onnxruntime-web") or node_problem("playwright-core")
        if why is None and chromium() is None:
            why = "no chromium on PATH (or in $CHROMIUM); install: make deps"
        return why

    def command(self, cases: Path, model: Path | None):
        cmd = ["node", str(examples_dir() / "browser" / "run_headless.js"), str(self.out.root)]
        cmd += ["--cases", str(cases)] + (["--model", str(model)] if model else [])
        return cmd, {"NODE_PATH": str(node_modules()), "CHROMIUM": chromium() or ""}


register(
    RuntimeKind(
        "onnxruntime-web",
        90,
        lambda t: [OnnxRuntimeWebNode(t.out, t.spec), OnnxRuntimeWebChromium(t.out, t.spec)],
    )
)
