"""Runtime onnxruntime-node: model.onnx in ONNX Runtime's Node.js binding, through the example.

Runs examples/node/classify.js, the program the README's Embedding section documents, over all of
verify's cases in one `node` process. Needs node and the npm packages of `make deps`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .onnx_model import OnnxModelRuntime
from .process import OnnxProgramRuntime, examples_dir, node_modules
from .registry import RuntimeKind, register

INSTALL = "make deps (Node.js 18+ and the npm packages pinned in js/package-lock.json)"


def node_problem(package: str) -> str | None:
    """Why node cannot run `package` here, with the command that fixes it; None when it can."""
    if shutil.which("node") is None:
        return f"node (Node.js) is not on PATH; install: {INSTALL}"
    if not (node_modules() / package / "package.json").is_file():
        return (
            f"the npm package {package} is not in {node_modules()} (set LENETC_NODE_MODULES to "
            f"another node_modules); install: {INSTALL}"
        )
    return None


class OnnxRuntimeNode(OnnxProgramRuntime, OnnxModelRuntime):
    name = "onnxruntime-node"
    package = "onnxruntime-node"

    def unavailable(self) -> str | None:
        return node_problem(self.package)

    def command(self, cases: Path, model: Path | None):
        cmd = ["node", str(examples_dir() / "node" / "classify.js"), str(self.out.root)]
        cmd += ["--cases", str(cases)] + (["--model", str(model)] if model else [])
        return cmd, {"NODE_PATH": str(node_modules()), "LENETC_ORT": self.package}


register(RuntimeKind("onnxruntime-node", 80, lambda t: [OnnxRuntimeNode(t.out, t.spec)]))
