"""Warnings lenetc expects from the libraries it drives, dropped one by one and never in bulk.

Each entry is (category, message pattern, why we accept it). `expected_warnings` drops exactly
those and re-emits every other warning raised inside it, so a new one still reaches the user.
Shared by export (TorchScript, torch.export, ONNX) and verify (loading the artifacts back).
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator

TORCHSCRIPT_WARNINGS = (
    (
        DeprecationWarning,
        r"`torch\.jit\.(script|trace|trace_method|save|load)` is deprecated",
        "torch 2.13 deprecates TorchScript; libtorch users still load it, and model.pt2 is "
        "written beside it as the successor",
    ),
)


@contextlib.contextmanager
def expected_warnings(expected) -> Iterator[None]:
    """Drop exactly the warnings listed in `expected`; re-emit every other one afterwards."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        known = any(
            issubclass(w.category, cat) and re.match(pattern, str(w.message))
            for cat, pattern, _why in expected
        )
        if not known:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
