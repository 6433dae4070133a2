"""Stage 6b, verify (divergence): where a failing artifact first departs from the torch module.

Takes the spec, the float64 reference module, weights.pt, one input on which a runtime failed and
that runtime's adapter; returns a Divergence naming the first spec layer (name, type, YAML line)
whose output the artifact does not reproduce within atol/rtol, with the numbers and the method:

1. intermediate outputs: the artifact's every intermediate tensor (ONNX graph outputs added for
   each node, the torch.export graph run by an fx Interpreter, the eager module's fx graph) is
   matched, in execution order, against the reference's per-layer outputs (the generated module
   run layer by layer with an fx Interpreter); the first layer no tensor reproduces is named.
2. layer by layer, where the artifact cannot show its intermediates (TorchScript): each of its
   layer submodules gets the reference input of that layer, and its output is compared.
3. parameters: every parameter the artifact holds is compared with weights.pt; a differing one
   names its layer even when 1 and 2 cannot see it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..layers import REGISTRY
from ..runtimes.base import Observed, Runtime
from ..spec.load import INPUT, Node, Spec


@dataclass
class LayerCheck:
    layer: str
    type: str
    line: int
    compared_with: str | None  # the artifact's tensor or submodule; None: not observable
    max_abs: float | None
    ok: bool | None


@dataclass
class Divergence:
    layer: str | None
    type: str | None
    line: int | None
    method: str
    detail: str
    parameters: list[str] = field(default_factory=list)
    layers: list[LayerCheck] = field(default_factory=list)

    def describe(self, spec_file: str) -> str:
        if self.layer is None:
            where = "first diverging layer not found"
        else:
            where = f"first diverging layer: {self.layer} ({self.type}), {spec_file}:{self.line}"
        text = f"{where} [{self.method}]: {self.detail}"
        if self.parameters:
            text += "; " + "; ".join(self.parameters)
        return text


def close(ref: np.ndarray, got: np.ndarray, atol: float, rtol: float) -> tuple[bool, float]:
    """numpy.allclose's rule with the float64 reference as b: |got - ref| <= atol + rtol*|ref|."""
    diff = np.abs(got.astype(np.float64) - ref)
    ok = bool(np.all(diff <= atol + rtol * np.abs(ref)))  # NaN compares False: not ok
    return ok, float(np.nanmax(diff)) if diff.size else 0.0


def reference_layers(model64: torch.nn.Module, spec: Spec, x: np.ndarray) -> dict[str, np.ndarray]:
    """The generated module run layer by layer (float64, CPU): spec node name -> its output."""
    graph_module = torch.fx.symbolic_trace(model64)
    calls = [n for n in graph_module.graph.nodes if n.op.startswith("call_")]
    by_name = {node.name: node for node in spec.nodes}
    # model.py writes one call per spec node, in spec order; the fx graph shows exactly that.
    aligned = len(calls) == len(spec.nodes) and all(
        c.target == n.name for c, n in zip(calls, spec.nodes) if c.op == "call_module"
    )
    if aligned:
        names = {c: n.name for c, n in zip(calls, spec.nodes)}
    else:  # not one call per layer: name what can be named, the layer submodules
        names = {c: str(c.target) for c in calls if c.op == "call_module"}
    values: dict[str, np.ndarray] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node):
            value = super().run_node(node)
            name = names.get(node)
            if name in by_name and isinstance(value, torch.Tensor):
                values[name] = value.detach().numpy()
            return value

    with torch.no_grad():
        Recorder(graph_module).run(torch.from_numpy(x).double())
    return values


def locate(
    runtime: Runtime,
    spec: Spec,
    model64: torch.nn.Module,
    weights: dict[str, np.ndarray],
    x: np.ndarray,
    atol: float,
    rtol: float,
) -> Divergence:
    ref = reference_layers(model64, spec, x)
    notes: list[str] = []
    try:
        observed = runtime.observe(x)
    except Exception as exc:  # an instrumented run that fails must not hide the parity failure
        observed = None
        notes.append(f"its intermediate outputs could not be read ({type(exc).__name__}: {exc})")
    if observed is not None:
        method = "intermediate outputs"
        checks = match_observed(spec, ref, observed, atol, rtol)
    else:
        method = "layer by layer"
        checks = run_layers(runtime, spec, ref, x, atol, rtol)
    params = parameter_diffs(runtime, weights, spec)
    first = next((c for c in checks if c.ok is False), None)
    if first is not None:
        detail = (
            f"max |ref - out| = {first.max_abs:.2e} against {runtime.artifact} "
            f"{first.compared_with} (atol {atol:.0e}, rtol {rtol:.0e})"
        )
        skipped = [c.layer for c in checks[: checks.index(first)] if c.ok is None]
        if skipped:
            notes.append(f"not checked on their own before it: {', '.join(skipped)}")
        node = _node(spec, first.layer)
    elif params:
        method = "parameters"
        node = _node(spec, params[0][0])
        detail = "every observable layer output is within tolerance, but a parameter differs"
    else:
        node = None
        unseen = [f"{c.layer} (line {c.line})" for c in checks if c.ok is None]
        detail = "every observable layer output is within tolerance and every parameter matches"
        if unseen:
            detail += "; the divergence lies in a layer it cannot show: " + ", ".join(unseen)
    if notes:
        detail += " (" + "; ".join(notes) + ")"
    return Divergence(
        layer=node.name if node else None,
        type=node.type if node else None,
        line=node.line if node else None,
        method=method,
        detail=detail,
        parameters=[text for _, text in params],
        layers=checks,
    )


def match_observed(
    spec: Spec, ref: dict[str, np.ndarray], observed: Observed, atol: float, rtol: float
) -> list[LayerCheck]:
    """Walk the spec's layers in order; each is reproduced by a same-shaped tensor that comes
    after the tensors of its inputs, or not. (In a chain that is after the previous match; in a
    graph the artifact may run the branches in another order than the spec lists them.)"""
    checks: list[LayerCheck] = []
    folded = {node.inputs[0] for node in spec.nodes if REGISTRY[node.type].folds_into_input}
    after: dict[str, int] = {INPUT: -1}  # layer -> index of its tensor (or of its inputs')
    for node in spec.nodes:
        cursor = max(after.get(name, -1) for name in node.inputs)
        after[node.name] = cursor
        want = ref.get(node.name)
        candidates = [
            (i, label, value)
            for i, (label, value) in enumerate(observed)
            if i > cursor and want is not None and value.shape == want.shape
        ]
        if not candidates:
            checks.append(LayerCheck(node.name, node.type, node.line, None, None, None))
            continue
        scored = [(i, label, *close(want, value, atol, rtol)) for i, label, value in candidates]
        passing = [s for s in scored if s[2]]
        if passing:
            i, label, _, max_abs = passing[0]
            after[node.name] = i
            checks.append(LayerCheck(node.name, node.type, node.line, f"'{label}'", max_abs, True))
            continue
        if node.name in folded:  # an exporter may fold the next layer (batch norm) into it:
            checks.append(LayerCheck(node.name, node.type, node.line, None, None, None))
            continue  # its own output then exists nowhere in the artifact
        _, label, _, max_abs = min(scored, key=lambda s: s[3])
        checks.append(LayerCheck(node.name, node.type, node.line, f"'{label}'", max_abs, False))
        break  # everything after the first divergence inherits it
    return checks


def run_layers(
    runtime: Runtime, spec: Spec, ref: dict[str, np.ndarray], x: np.ndarray, atol, rtol
) -> list[LayerCheck]:
    """Feed each of the artifact's layer submodules the reference input of that layer."""
    checks: list[LayerCheck] = []
    outputs = {INPUT: x.astype(np.float64)}
    for node in spec.nodes:
        want = ref.get(node.name)
        layer = runtime.layer(node.name)
        previous = outputs.get(node.inputs[0])  # a layer submodule reads one input
        if layer is None or want is None or previous is None:
            checks.append(LayerCheck(node.name, node.type, node.line, None, None, None))
        else:
            with torch.no_grad():
                got = layer(torch.from_numpy(previous.astype(np.float32))).numpy()
            ok, max_abs = close(want, got, atol, rtol) if got.shape == want.shape else (False, 0)
            checks.append(
                LayerCheck(node.name, node.type, node.line, f"submodule {node.name}", max_abs, ok)
            )
            if not ok:
                break
        if want is not None:
            outputs[node.name] = want
    return checks


def parameter_diffs(
    runtime: Runtime, weights: dict[str, np.ndarray], spec: Spec
) -> list[tuple[str, str]]:
    """(layer name, what) for every parameter of the artifact that differs from weights.pt.

    Layers that an exporter may legitimately rewrite (a conv whose batch norm was folded into it)
    are left to the activations."""
    folded = {node.inputs[0] for node in spec.nodes if REGISTRY[node.type].folds_into_input}
    try:
        held = runtime.parameters()
    except Exception:
        held = None
    if not held:
        return []
    found = []
    for key, want in weights.items():
        got = held.get(key)
        if key.split(".")[0] in folded:
            continue
        if got is None or got.shape != want.shape:
            continue  # renamed or re-laid-out by the exporter: the activations speak for it
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        if diff.size and float(diff.max()) > 0:
            where = tuple(int(i) for i in np.unravel_index(int(diff.argmax()), diff.shape))
            found.append(
                (
                    key.split(".")[0],
                    f"parameter {key} differs from weights.pt: max |Δ| {diff.max():.2e} "
                    f"at {list(where)}",
                )
            )
    return found


def _node(spec: Spec, name: str) -> Node | None:
    return next((n for n in spec.nodes if n.name == name), None)
