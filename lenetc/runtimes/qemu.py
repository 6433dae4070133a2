"""Runtime qemu: rows c[cortex-m4,qemu] and c[cortex-m3,qemu], the C target cross-compiled for a
Cortex-M4F (hard float) and a Cortex-M3 (soft float) and run on QEMU's mps2 boards.

The device program (templates/mcu/run.c.j2) is compiled with c/'s model sources by cross.py and
reads all of verify's cases in one QEMU run through semihosting; SysTick, under -icount, counts the
instructions of the forward calls (`instructions`, for `lenetc bench`). Every output is also run
through the host's build of the same sources at the Makefile's -O2 (c[cpu]'s library) and compared
bit for bit; `findings` says how many outputs match. A `Variant` is one C variant of c/ (its row
tag, its files, its forward function): a variant of the C target is one more entry of VARIANTS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..artifacts import BuildDir
from ..check.shapes import check
from ..layers.base import numel
from ..spec.load import Spec
from ..targets.c import WEIGHTS_FILE, model_view, prefix
from ..targets.templates import environment
from . import cross
from .base import Runtime, RuntimeProblem
from .c import PORTABLE_FLAGS, CTarget, compiler
from .process import case_dir
from .registry import RuntimeKind, register

DEADLINE = 60.0  # seconds for QEMU to start and run the file I/O, before the forward calls
# A generous bound on emulated instructions per FLOP (measured on LeNet-5: 2.8 on the M4F, 40 on
# the M3's soft float) and on QEMU's speed on a busy machine: the deadline, not a cost estimate.
INSTRUCTIONS_PER_FLOP = {"hard float": 10, "soft float": 100}
SLOWEST = 50e6  # instructions a second
_DONE = re.compile(r"lenetc-run: (\d+) samples, (\d+) ticks")


@dataclass(frozen=True)
class Variant:
    """One C variant of a build's c/: its tag in the rows' names (`c[cortex-m4,qemu,<tag>]`; ""
    for float), the files of c/ it compiles (the first is the row's artifact) and the suffix of
    its forward function (`<prefix><suffix>_forward(const float *, float *, int)`, float in and
    out, which run.c declares itself: a variant needs no header)."""

    tag: str
    sources: tuple[str, ...]
    suffix: str = ""
    selftest: str | None = "selftest.c"  # its self-test in c/, whose size the build measures

    def row(self, core: cross.Core) -> str:
        return f"c[{core.name},qemu{',' + self.tag if self.tag else ''}]"

    def build(self, core: cross.Core) -> str:
        """Its name compiled for a core, in footprint.json: c[cortex-m4], c[cortex-m4,int8]."""
        return f"c[{core.name}{',' + self.tag if self.tag else ''}]"


# The int8 variant is one more entry, e.g. Variant("int8", ("model_int8.c",
# "model_int8_weights.h"), "_int8", None), and its host twin for the bit-for-bit note.
VARIANTS = (Variant("", ("model.c", "model.h", WEIGHTS_FILE)),)


def device_program(spec: Spec, variant: Variant) -> str:
    """run.c for this spec and variant."""
    trace = check(spec)
    m = model_view(trace, None)
    r = {"forward": f"{prefix(trace)}{variant.suffix}_forward"}
    return environment().get_template("mcu/run.c.j2").render(m=m, r=r)


class Qemu(CTarget):
    """One variant on one core. Its parameters are c[cpu]'s (model_weights.h read back)."""

    runs_cases_at_once = True

    def __init__(self, out: BuildDir, spec: Spec, core: cross.Core, variant: Variant) -> None:
        super().__init__(out, spec)
        self.core, self.variant = core, variant
        self.name = variant.row(core)
        self.emulates = f"{core.label} ({core.board})"
        self.artifact = f"c/{variant.sources[0]}"
        self.ticks = self.samples = 0
        self.notes: list[str] = []

    def unavailable(self) -> str | None:
        if not self.out.c_dir.is_dir():
            return "the build folder has no c/ (built before lenetc had a C target): rebuild it"
        return cross.missing()

    def load(self) -> None:
        Runtime.load(self)
        self.fast = False  # the host twin is the Makefile's build, whatever bench asked for
        self.host = compiler() is not None
        if self.host:
            super().load()
        sources = {}
        for name in self.variant.sources:
            path = self.out.c_dir / name
            if not path.is_file():
                raise RuntimeProblem(f"{name} is missing from {self.out.c_dir}")
            sources[name] = path.read_text(encoding="utf-8")
        sources["run.c"] = device_program(self.spec, self.variant)
        self.elf = cross.firmware(self.core, sources, "run.c", "run")

    def run_many(self, xs: list[np.ndarray]) -> list[list[np.ndarray]]:
        rows = [np.ascontiguousarray(x, dtype="<f4").reshape(len(x), -1) for x in xs]
        count = sum(len(r) for r in rows)
        shape = (count,) + tuple(self.output_shape)
        with case_dir() as folder:
            np.concatenate(rows).tofile(folder / "cases.f32")
            said = cross.run_qemu(self.elf, self.core, folder, self._deadline(count))
            done = _DONE.search(said)
            y = np.fromfile(folder / "outputs.f32", dtype="<f4") if done else np.empty(0)
        if done is None or int(done[1]) != count or y.size != numel(shape):
            last = said.strip().splitlines()[-1] if said.strip() else "it printed nothing"
            raise RuntimeProblem(
                f"{self.name}: the device program did not run all {count} samples ({last})"
            )
        self.samples, self.ticks = count, int(done[2])
        bounds = np.cumsum([len(x) for x in xs])[:-1]
        outputs = [[part] for part in np.split(y.reshape(shape), bounds)]
        self.notes = [self._against_host(xs, outputs)]
        return outputs

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        return self.run_many([x])[0]

    def findings(self) -> list[str]:
        return list(self.notes)

    def instructions(self) -> float | None:
        """Emulated instructions per inference in the last run (SysTick under -icount)."""
        if not self.samples:
            return None
        return self.ticks * cross.INSTRUCTIONS_PER_TICK / self.samples

    def _deadline(self, samples: int) -> float:
        per_flop = INSTRUCTIONS_PER_FLOP[self.core.floats]
        return DEADLINE + samples * max(check(self.spec).flops, 1) * per_flop / SLOWEST

    def _against_host(self, xs: list[np.ndarray], outputs: list[list[np.ndarray]]) -> str:
        """How many outputs equal, bit for bit, those of the host's -O2 build of the sources."""
        if not self.host:
            return "not compared with the host's build: no C compiler here"
        device = np.concatenate([o[0].ravel() for o in outputs])
        host = np.concatenate([CTarget.run(self, x)[0].ravel() for x in xs])
        same = int(np.sum(device.view(np.uint32) == host.view(np.uint32)))
        flags = self.compiled_with or " ".join(PORTABLE_FLAGS)
        if same == device.size:
            return f"bit-exact with the host's build ({flags}): {same} of {device.size} outputs"
        worst = float(np.max(np.abs(device.astype(np.float64) - host)))
        return (
            f"{same} of {device.size} outputs bit-exact with the host's build ({flags}); "
            f"the others differ by at most {worst:.2e}"
        )


register(
    RuntimeKind(
        "qemu",
        56,
        lambda t: [Qemu(t.out, t.spec, core, v) for v in VARIANTS for core in cross.CORES],
    )
)
