"""Stage 5, export, when it fails: an exception -> one RuntimeFailure line with stage and layer.

Takes the exporter's exception (with its chain of causes), the spec and the build folder; returns
a RuntimeFailure that reads

    export stage onnx failed at layer relu1 (relu), specs/lenet5.yaml:9: ValueError: ...

The layer is found two ways. The ONNX translator names the FX node it was translating
(`%relu_1 ... target=torch.ops.aten.relu.default`): FX numbers the nodes of one op in graph order,
and for a chain graph order is spec order, so relu_1 is the spec's second relu-like layer.
Tracing and scripting errors carry a traceback or a source excerpt through the generated
model.py; its line names the layer attributes (`self.conv1`) or functions (`F.relu`) on it.
"""

from __future__ import annotations

import re
import traceback
from pathlib import Path

from ..artifacts import BuildDir
from ..errors import RuntimeFailure
from ..spec.load import Node, Spec

# ATen ops (as FX names their nodes) -> the layer types that produce them.
ATEN_LAYER_TYPES = {
    "conv2d": ("conv2d",),
    "convolution": ("conv2d",),
    "linear": ("linear",),
    "addmm": ("linear",),
    "relu": ("relu",),
    "leaky_relu": ("leaky_relu",),
    "gelu": ("gelu",),
    "tanh": ("tanh",),
    "sigmoid": ("sigmoid",),
    "max_pool2d": ("max_pool2d",),
    "max_pool2d_with_indices": ("max_pool2d",),
    "avg_pool2d": ("avg_pool2d",),
    "adaptive_avg_pool2d": ("adaptive_avg_pool2d",),
    "_adaptive_avg_pool2d": ("adaptive_avg_pool2d",),
    "softmax": ("softmax",),
    "_softmax": ("softmax",),
    "log_softmax": ("log_softmax",),
    "_log_softmax": ("log_softmax",),
    "batch_norm": ("batch_norm2d",),
    "_native_batch_norm_legit_no_training": ("batch_norm2d",),
    "flatten": ("flatten",),
    "dropout": ("dropout",),
}
_FX_NODE = re.compile(
    r"node %(?P<node>\w+?)(?:_(?P<k>\d+))? :.*?target=torch\.ops\.aten\.(?P<op>\w+)"
)
_MODEL_LINE = re.compile(r'model\.py", line (?P<line>\d+)|model\.py:(?P<line2>\d+)')


def failure(stage: str, exc: BaseException, spec: Spec, out: BuildDir) -> RuntimeFailure:
    node = locate(exc, spec, out.model_py)
    where = f" at layer {node.label}, {spec.path}:{node.line}" if node else ""
    return RuntimeFailure(f"export stage {stage} failed{where}: {_innermost(exc)}")


def locate(exc: BaseException, spec: Spec, model_py: Path) -> Node | None:
    """The spec layer an export exception points at, or None when it points nowhere we know."""
    text = "\n".join(_chain_text(exc, model_py))
    found = _FX_NODE.search(text)
    if found:
        types = ATEN_LAYER_TYPES.get(found["op"], ())
        nth = int(found["k"] or 0)
        matching = [n for n in spec.nodes if n.type in types]
        if nth < len(matching):
            return matching[nth]
    for m in _MODEL_LINE.finditer(text):
        node = _node_on_line(int(m["line"] or m["line2"]), spec, model_py)
        if node is not None:
            return node
    return None


def _node_on_line(number: int, spec: Spec, model_py: Path) -> Node | None:
    try:
        line = model_py.read_text(encoding="utf-8").splitlines()[number - 1]
    except (OSError, IndexError):
        return None
    code = line.split("#", 1)[0]
    attrs = set(re.findall(r"self\.(\w+)", code))
    by_attr = [n for n in spec.nodes if n.name in attrs]
    if len(by_attr) == 1:
        return by_attr[0]
    calls = set(re.findall(r"(?:F|torch)\.(\w+)\(", code))
    by_call = [n for n in spec.nodes if n.type in calls]
    return (by_attr or by_call or [None])[0]


def _chain_text(exc: BaseException, model_py: Path) -> list[str]:
    """Messages, and frames in model.py, of exc and every cause/context, outermost first."""
    parts, seen = [], set()
    generated = str(model_py.resolve())
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(str(current))
        parts.extend(
            f'File "model.py", line {f.lineno}'
            for f in traceback.extract_tb(current.__traceback__)
            if f.filename == generated
        )
        current = current.__cause__ or current.__context__
    return parts


def _innermost(exc: BaseException) -> str:
    """The root cause's type and first line: the exporter's wrappers add paragraphs of advice."""
    seen = set()
    while (exc.__cause__ or exc.__context__) is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
