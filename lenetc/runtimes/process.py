"""Runtimes (process): what the adapters that run another program share (Node.js, Chromium, C++).

Such an adapter runs one of the example programs in examples/ (what the README documents is what
verify proves), once for all of verify's cases: `write_cases` puts each input batch in a temporary
folder as raw float32 (NAME.in, its dims in cases.txt); the program writes each output k as
NAME.out<k> with its dims in NAME.out<k>.shape. `run_program` gives the program a deadline,
kills its whole process tree when it passes (a browser spawns its own), and turns a non-zero exit
into a RuntimeProblem carrying the program's first line of error.
"""

from __future__ import annotations

import abc
import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import numpy as np

from .base import RuntimeProblem

REPO = Path(__file__).resolve().parents[2]


def examples_dir() -> Path:
    """examples/ from the installed wheel (lenetc.examples) or, in a checkout, the repo root."""
    with contextlib.suppress(ModuleNotFoundError):
        found = Path(str(resources.files("lenetc.examples")))
        if (found / "node").is_dir():
            return found
    return REPO / "examples"


def node_modules() -> Path:
    """Where the npm packages are: $LENETC_NODE_MODULES, else js/node_modules of the checkout."""
    return Path(os.environ.get("LENETC_NODE_MODULES") or REPO / "js" / "node_modules")


def run_program(
    cmd: list[str], timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None
) -> str:
    """Run cmd (in `cwd`) to completion within timeout seconds; its stdout, or a RuntimeProblem."""
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        start_new_session=True,  # its own process group: nothing of it outlives us
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException as exc:  # the deadline, or Ctrl-C: the program and all it started go
        kill_tree(proc.pid)
        proc.communicate()
        if isinstance(exc, subprocess.TimeoutExpired):
            name = Path(cmd[0]).name
            raise RuntimeProblem(f"{name} did not finish within {timeout:g} s") from None
        raise
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # what it left behind in its group (an id in use)
    if proc.returncode != 0:
        said = [line for line in (err + "\n" + out).splitlines() if line.strip()]
        why = said[0].strip() if said else f"exit status {proc.returncode}"
        raise RuntimeProblem(f"{Path(cmd[0]).name} failed: {why}")
    return out


def kill_tree(pid: int) -> None:
    """SIGKILL a live pid's process group and every descendant (through /proc), even those that
    left its group (a browser launched detached)."""
    victims = _descendants(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for child in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child, signal.SIGKILL)


def _descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@contextlib.contextmanager
def case_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="lenetc-cases-") as tmp:
        yield Path(tmp)


def write_cases(folder: Path, xs: list[np.ndarray]) -> None:
    lines = []
    for i, x in enumerate(xs):
        np.ascontiguousarray(x, dtype="<f4").tofile(folder / f"case{i}.in")
        lines.append(" ".join([f"case{i}", *(str(d) for d in x.shape)]))
    (folder / "cases.txt").write_text("\n".join(lines) + "\n")


def read_outputs(folder: Path, count: int) -> list[list[np.ndarray]]:
    """Every case's outputs, in order; a missing file is a RuntimeProblem."""
    results = []
    for i in range(count):
        outputs, k = [], 0
        while (folder / f"case{i}.out{k}").is_file():
            dims = [int(d) for d in (folder / f"case{i}.out{k}.shape").read_text().split()]
            outputs.append(np.fromfile(folder / f"case{i}.out{k}", dtype="<f4").reshape(dims))
            k += 1
        if not outputs:
            raise RuntimeProblem(f"the program wrote no output for case {i}")
        results.append(outputs)
    return results


class ProgramRuntime(abc.ABC):
    """Mixin for an adapter that runs a program over all cases at once: it gives `command`."""

    timeout = 120.0  # seconds for one invocation, however many cases
    runs_cases_at_once = True

    @abc.abstractmethod
    def command(self, cases: Path, model: Path | None) -> tuple[list[str], dict[str, str]]:
        """The program's argv and extra environment, reading `cases` (and `model` if given)."""

    def run_many(self, xs: list[np.ndarray]) -> list[list[np.ndarray]]:
        with case_dir() as folder:
            write_cases(folder, xs)
            cmd, env = self.command(folder, None)
            run_program(cmd, self.timeout, env)
            return read_outputs(folder, len(xs))

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        return self.run_many([x])[0]


class OnnxProgramRuntime(ProgramRuntime):
    """A program that runs model.onnx, and the all-outputs copy when asked to observe."""

    def run_observable(self, model, x: np.ndarray) -> dict[str, np.ndarray]:
        """The all-outputs copy of model.onnx run by the program (observe: OnnxModelRuntime's)."""
        with case_dir() as folder:
            write_cases(folder, [x])
            path = folder / "observable.onnx"
            path.write_bytes(model.SerializeToString())
            cmd, env = self.command(folder, path)
            run_program(cmd, self.timeout, env)
            (outputs,) = read_outputs(folder, 1)
        return dict(zip([o.name for o in model.graph.output], outputs))
