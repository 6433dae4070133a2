"""Runtimes (base): what every runtime adapter offers, and the errors it raises.

An adapter takes the build folder and runs float32 inputs through one artifact on one runtime and
device. It says why it cannot run here (`unavailable`), loads its artifact (`load`, raising
RuntimeProblem or SilentFallback), and returns outputs as numpy arrays (`run`). To locate a
divergence it also offers its intermediate tensors in execution order (`observe`), its layer
submodules (`layer`) and its parameters by their names in the artifact (`parameters`), where it can.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import numpy as np
import torch

from .. import errors
from ..artifacts import BuildDir
from ..spec.load import Spec

Observed = list[tuple[str, np.ndarray]]


class RuntimeProblem(Exception):
    """The artifact could not be loaded or run on this runtime: a failure, with the cause."""


class SilentFallback(RuntimeProblem):
    """An execution provider was requested, but the session runs without it."""


class Runtime(abc.ABC):
    """One artifact on one runtime and device. Subclasses fill in what they can do."""

    name = ""
    kind = ""  # the registered name (registry.py) this row belongs to
    artifact = ""
    device = "cpu"
    static_batch: int | None = None  # an ONNX graph exported without a dynamic batch axis
    # Set by load() where the runtime computes below float32 on its own (OpenVINO's bf16 default
    # on CPUs with AMX): the row is then shown, judged, and a failure is a warning unless required.
    reduced_precision: str | None = None
    runs_cases_at_once = False  # run_many is one call of another program, not a loop over run
    # Set by `lenetc bench` before load(): run on this many threads, and build the artifact for
    # speed on this machine (the C target: -O3 -march=native); an adapter honours what it can.
    threads: int | None = None
    fast: bool = False

    def __init__(self, out: BuildDir, spec: Spec) -> None:
        self.out = out
        self.spec = spec

    def unavailable(self) -> str | None:
        return None

    @property
    def expected_in_ci(self) -> bool:
        """CI (CI=true) installs every runtime that needs no hardware: there, unavailable fails."""
        return self.device == "cpu"

    def load(self) -> None:
        path = self.out.root / self.artifact
        if not path.is_file():
            raise RuntimeProblem(f"{path.name} is missing from the build folder")

    @abc.abstractmethod
    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """The artifact's outputs for a float32 batch."""

    def run_many(self, xs: list[np.ndarray]) -> list[list[np.ndarray]]:
        """Outputs for several batches; a runtime in another process runs them in one go."""
        return [self.run(x) for x in xs]

    def observe(self, x: np.ndarray) -> Observed | None:
        return None

    def layer(self, name: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
        return None

    def parameters(self) -> dict[str, np.ndarray] | None:
        return None


def first_line(exc: BaseException) -> str:
    """A runtime's exception as one line, after its type (`RuntimeError: ...`)."""
    return errors.first_line(exc, typed=True)
