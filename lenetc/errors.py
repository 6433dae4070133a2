"""Errors that are part of lenetc's interface, and the exit code each one maps to.

A SpecError carries every Problem found in a spec (file, YAML line, layer, message, hint);
it exits 2.
A RuntimeFailure (missing dataset, unwritable folder, export failure) exits 1 with a one-line cause
(`first_line` and `cannot_read` phrase a library's exception or a failed read as one).
A ParityFailure exits 3. An IntegrityFailure (an artifact that does not match manifest.json, or
artifacts that contradict each other: a tampered or mixed build folder) exits 4. Only cli.py turns
these into exit codes.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_SPEC = 2
EXIT_PARITY = 3
EXIT_INTEGRITY = 4


@dataclass(frozen=True)
class Location:
    """Where a problem sits: a file and a 1-based YAML line (0 when unknown)."""

    file: str
    line: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec, phrased as expected vs found, with a way out."""

    message: str
    at: Location
    layer: str | None = None  # "fc1 (linear)" when the problem belongs to a layer
    hint: str | None = None

    def format(self) -> str:
        where = f"{self.at}: "
        what = f"layer {self.layer}: " if self.layer else ""
        text = f"{where}{what}{self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class LenetcError(Exception):
    """Base class: every error lenetc raises on purpose."""

    exit_code = EXIT_RUNTIME


class SpecError(LenetcError):
    """The spec is wrong; carries every problem found (exit 2)."""

    exit_code = EXIT_SPEC

    def __init__(self, problems: list[Problem] | Problem) -> None:
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(p.format() for p in self.problems))


class UsageError(LenetcError):
    """A command-line argument is wrong (exit 2)."""

    exit_code = EXIT_SPEC


class RuntimeFailure(LenetcError):
    """The spec is fine, but something in the world is not: a file, a folder, a library (exit 1)."""

    exit_code = EXIT_RUNTIME


class ParityFailure(LenetcError):
    """An exported artifact does not compute what the torch module computes (exit 3)."""

    exit_code = EXIT_PARITY


class IntegrityFailure(LenetcError):
    """A build folder's files do not match its manifest or each other: it was changed after its
    build, or holds a mix of two builds (exit 4). `problems` lists every one found, each naming
    its file first ("build/lenet5/model.onnx: ..."); str() is one line: the first problem and the
    files of the others."""

    exit_code = EXIT_INTEGRITY

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        text = self.problems[0]
        others = list(dict.fromkeys(p.split(": ", 1)[0] for p in self.problems[1:]))
        if others:
            text += f" (and {len(self.problems) - 1} more, in {', '.join(others)})"
        super().__init__(text)


def first_line(exc: BaseException, typed: bool = False) -> str:
    """An exception's message as one line: its first (a library's detail and traceback-like tail
    dropped), after its type's name when `typed`; the type's name alone when it says nothing."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    return f"{type(exc).__name__}: {lines[0]}" if typed else lines[0]


def cannot_read(exc: OSError, path: object, what: str) -> RuntimeFailure:
    """An OSError met reading `path` (a dataset file, `what` says which) as the one-line failure
    to raise: `train images data/x.npy: no such file`."""
    if isinstance(exc, FileNotFoundError):
        said = "no such file"
    elif isinstance(exc, IsADirectoryError):
        said = "is a folder, not a file"
    else:
        said = f"cannot read ({exc.strerror or exc})"
    return RuntimeFailure(f"{what} {path}: {said}")
