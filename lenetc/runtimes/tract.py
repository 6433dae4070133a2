"""Runtime tract: model.onnx in tract (Sonos' Rust ONNX engine, here through its Python wheel).

What a Rust program embeds with `tract-onnx`: no native libraries, the dynamic batch kept
symbolic. Intermediates are observed by loading the graph with every node's output added.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from .base import RuntimeProblem, first_line
from .onnx_model import OnnxModelRuntime
from .registry import RuntimeKind, register

INSTALL = "pip install 'lenetc[runtimes]' (or: pip install tract)"


class Tract(OnnxModelRuntime):
    name = "tract"

    def unavailable(self) -> str | None:
        try:
            import tract  # noqa: F401
        except ImportError as exc:
            return f"the tract Python package cannot be imported ({exc}); install: {INSTALL}"
        return None

    def load(self) -> None:
        super().load()
        self.plan = _runnable(self.out.root / self.artifact)

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        return [t.to_numpy() for t in self.plan.run([x])]

    def run_observable(self, model, x: np.ndarray) -> dict[str, np.ndarray]:
        with tempfile.TemporaryDirectory(prefix="lenetc-tract-") as tmp:
            path = Path(tmp) / "observable.onnx"
            path.write_bytes(model.SerializeToString())
            plan = _runnable(path)
        names = [o.name for o in model.graph.output]
        return dict(zip(names, (t.to_numpy() for t in plan.run([x]))))


def _runnable(path: Path):
    import tract

    try:
        return tract.onnx().load(str(path)).into_model().into_runnable()
    except Exception as exc:
        raise RuntimeProblem(f"tract could not load the model: {first_line(exc)}") from exc


register(RuntimeKind("tract", 60, lambda t: [Tract(t.out, t.spec)]))
