"""Warnings lenetc expects from the libraries it drives, dropped one by one and never in bulk.

Each entry is (category, message pattern, why we accept it). `expected_warnings` drops exactly
those and re-emits every other warning raised inside it, so a new one still reaches the user.
Shared by export (TorchScript, torch.export, ONNX) and verify (loading the artifacts back).

Libraries also log. `expected_log` drops exactly one known record from one logger (torch.export
logs the traceback of an error it then raises; the raised error is what lenetc reports), and
`library_logs_in_one_line`, around every CLI command, strips the traceback from any record torch
or onnxscript still logs: the user sees its one line, never a library's traceback.
"""

from __future__ import annotations

import contextlib
import logging
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


# (logger, message regex, why we accept it): records dropped where they are expected.
TORCH_EXPORT_LOAD_LOG = (
    "torch.export",
    r"Ran into the following error when deserializing",
    "torch.export.load logs the traceback of a RuntimeError, then raises it: the runtime's row "
    "reports the error itself",
)
QUIET_LIBRARIES = ("torch", "onnxscript")


class _Drop(logging.Filter):
    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.match(record.getMessage())


@contextlib.contextmanager
def expected_log(expected: tuple[str, str, str]) -> Iterator[None]:
    """Drop the one record `expected` names from its logger while the block runs."""
    name, pattern, _why = expected
    logger, drop = logging.getLogger(name), _Drop(pattern)
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


@contextlib.contextmanager
def library_logs_in_one_line(libraries: tuple[str, ...] = QUIET_LIBRARIES) -> Iterator[None]:
    """Records of these libraries' loggers keep their message and lose their traceback."""
    factory = logging.getLogRecordFactory()

    def make(name, level, fn, lno, msg, args, exc_info, func=None, sinfo=None, **kwargs):
        if name.split(".")[0] in libraries:
            exc_info = sinfo = None
        return factory(name, level, fn, lno, msg, args, exc_info, func, sinfo, **kwargs)

    logging.setLogRecordFactory(make)
    try:
        yield
    finally:
        logging.setLogRecordFactory(factory)
