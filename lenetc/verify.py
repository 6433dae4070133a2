"""Stage 6, verify: a build folder -> a parity report of every artifact against the torch module.

The reference is the generated module with the trained weights, evaluated in float64 on the CPU.
Each runtime (ONNX Runtime per execution provider, ...) runs the same inputs; we report the max
absolute and relative error and PASS/FAIL against atol/rtol.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .artifacts import BuildDir, load_module_class, write_json
from .errors import RuntimeFailure
from .spec import Spec, load_spec


@dataclass
class Check:
    runtime: str
    batch: int
    max_abs: float
    max_rel: float
    passed: bool


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def reference_model(out: BuildDir, spec: Spec) -> torch.nn.Module:
    cls = load_module_class(out.model_py, spec.class_name)
    model = cls()
    model.load_state_dict(torch.load(out.weights, weights_only=True))
    return model.eval()


def verify_build(root, atol: float | None = None, rtol: float | None = None) -> Report:
    import onnxruntime as ort

    out = BuildDir(root)
    if not out.spec.is_file():
        raise RuntimeFailure(f"{root} is not a lenetc build folder (no spec.yaml)")
    spec = load_spec(out.spec)
    atol = spec.verify.atol if atol is None else atol
    rtol = spec.verify.rtol if rtol is None else rtol
    model = reference_model(out, spec)
    ref64 = model.double()
    report = Report()
    session = ort.InferenceSession(str(out.onnx), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(spec.train.seed)
    for batch in spec.verify.batch_sizes:
        x = rng.standard_normal((batch,) + spec.input_shape).astype(np.float32)
        with torch.no_grad():
            ref = ref64(torch.from_numpy(x).double()).numpy()
        got = session.run(None, {session.get_inputs()[0].name: x})[0]
        diff = np.abs(got.astype(np.float64) - ref)
        rel = diff / np.maximum(np.abs(ref), 1e-12)
        ok = bool(np.all(diff <= atol + rtol * np.abs(ref)))
        report.checks.append(
            Check("onnxruntime:cpu", batch, float(diff.max()), float(rel.max()), ok)
        )
    write_json(out.verify_json, asdict(report) | {"passed": report.passed})
    return report
