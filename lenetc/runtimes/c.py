"""Runtime c[cpu]: the C target (c/model.c with its weights), compiled to a shared library and
called through ctypes.

`compile_library` runs the system's C compiler (CC, else cc, gcc or clang) over c/model.c with the
given flags into a per-user cache keyed by the sources' hash, the flags and the compiler; verify
uses the Makefile's portable flags (`-std=c99 -O2 -ffp-contract=off`), `lenetc bench` builds with
`-O3 -march=native` (never -ffast-math: it would reorder the sums verify vouches for).
`parameters` reads the weights back from model_weights.h, in torch's layout, so a changed weight
is named by the parity table.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..artifacts import BuildDir
from ..check.shapes import check
from ..spec.load import Spec
from ..targets.c import WEIGHTS_FILE, prefix, read_weights
from .base import Runtime, RuntimeProblem
from .registry import RuntimeKind, register

# No contraction of a * b + c into one fused multiply-add (clang's default, not gcc's in C99
# mode): every product and sum is rounded as written, so the portable and the fast build, gcc's
# and clang's, compute the very same bits, the ones verify checked.
PORTABLE_FLAGS = ("-std=c99", "-O2", "-ffp-contract=off")
FAST_FLAGS = ("-std=c99", "-O3", "-march=native", "-ffp-contract=off")
SOURCES = ("model.c", "model.h", WEIGHTS_FILE)
INSTALL = "install a C compiler (apt-get install gcc) or set CC"


def compiler() -> str | None:
    """The C compiler to use: $CC if set, else the first of cc, gcc, clang on PATH."""
    named = os.environ.get("CC")
    if named:
        return shutil.which(named)
    return next((found for c in ("cc", "gcc", "clang") if (found := shutil.which(c))), None)


def compile_library(
    c_dir: Path,
    flags: tuple[str, ...] = PORTABLE_FLAGS,
    cc: str | None = None,
    sources: tuple[str, ...] = SOURCES,
) -> Path:
    """c_dir's first source (model.c) as a shared library, compiled once per sources, flags
    and compiler."""
    cc = cc or compiler()
    if cc is None:
        raise RuntimeProblem(f"no C compiler found; {INSTALL}")
    digest = hashlib.sha256(repr((cc, flags)).encode())
    for name in sources:
        path = c_dir / name
        if not path.is_file():
            raise RuntimeProblem(f"{path.name} is missing from {c_dir}")
        digest.update(name.encode() + b"\0" + path.read_bytes())
    cache = Path(tempfile.gettempdir()) / f"lenetc-c-{os.getuid()}"
    cache.mkdir(mode=0o700, exist_ok=True)
    final = cache / f"{digest.hexdigest()[:24]}.so"
    if final.is_file():
        return final
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache)
    os.close(fd)
    command = [cc, *flags, "-fPIC", "-shared", "-o", tmp, sources[0], "-lm"]
    done = subprocess.run(command, cwd=c_dir, capture_output=True, text=True)
    if done.returncode != 0:
        os.unlink(tmp)
        said = (done.stderr or done.stdout).strip().splitlines()
        raise RuntimeProblem(
            f"{Path(cc).name} {' '.join(flags)} could not compile c/{sources[0]}: "
            + (said[0] if said else f"exit {done.returncode}")
        )
    os.replace(tmp, final)
    return final


class CTarget(Runtime):
    """c/model.c through ctypes; one sample after another, on one thread. Compiled with the
    Makefile's portable flags, or for speed on this machine when `fast` (bench)."""

    name = "c[cpu]"
    artifact = "c/model.c"

    def __init__(self, out: BuildDir, spec: Spec) -> None:
        super().__init__(out, spec)
        self.output_shape = check(spec).output_shape
        self.compiled_with = ""

    def unavailable(self) -> str | None:
        if compiler() is None:
            return f"no C compiler found; {INSTALL}"
        if not self.out.c_dir.is_dir():
            return "the build folder has no c/ (built before lenetc had a C target): rebuild it"
        return None

    def load(self) -> None:
        super().load()
        flags = FAST_FLAGS if self.fast else PORTABLE_FLAGS
        cc = compiler()
        library = compile_library(self.out.c_dir, flags, cc)
        self.compiled_with = f"{Path(cc or 'cc').name} {' '.join(flags)}"
        try:
            self.library = ctypes.CDLL(str(library))
            self.forward = getattr(self.library, f"{prefix(check(self.spec))}_forward")
        except (OSError, AttributeError) as exc:
            raise RuntimeProblem(f"cannot load the compiled C target: {exc}") from exc
        self.forward.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int)
        self.forward.restype = None

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.empty((len(x),) + tuple(self.output_shape), dtype=np.float32)
        # __array_interface__ costs less than .ctypes: a microsecond of a 40-microsecond call
        self.forward(x.__array_interface__["data"][0], y.__array_interface__["data"][0], len(x))
        return [y]

    def parameters(self) -> dict[str, np.ndarray]:
        text = (self.out.c_dir / WEIGHTS_FILE).read_text(encoding="utf-8")
        params = {}
        for key, (shape, perm, stored, values) in read_weights(text).items():
            array = np.asarray(values, np.float32).reshape(stored)
            array = array[..., : shape[perm[-1]]]  # without the zeros of padded lanes
            params[key] = np.transpose(array, np.argsort(perm))
        return params


class CInt8Target(CTarget):
    """c/model_int8.c (the int8 variant) through ctypes: verify's and bench's int8 row only,
    not a registered runtime (it runs what quant/ wrote, against quant/'s reference)."""

    name = "c[cpu,int8]"
    artifact = "c/model_int8.c"
    sources = ("model_int8.c", "model_int8_weights.h")

    @property
    def expected_in_ci(self) -> bool:
        """A graph spec has no int8 C variant by design: unavailable, even in CI."""
        return (self.out.c_dir / self.sources[0]).is_file()

    def unavailable(self) -> str | None:
        if compiler() is None:
            return f"no C compiler found; {INSTALL}"
        if not (self.out.c_dir / self.sources[0]).is_file():
            return "the build has no c/model_int8.c (a graph spec, or built before it existed)"
        return None

    def load(self) -> None:
        flags = FAST_FLAGS if self.fast else PORTABLE_FLAGS
        cc = compiler()
        library = compile_library(self.out.c_dir, flags, cc, self.sources)
        self.compiled_with = f"{Path(cc or 'cc').name} {' '.join(flags)}"
        try:
            self.library = ctypes.CDLL(str(library))
            self.forward = getattr(self.library, f"{prefix(check(self.spec))}_int8_forward")
        except (OSError, AttributeError) as exc:
            raise RuntimeProblem(f"cannot load the compiled int8 C target: {exc}") from exc
        self.forward.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int)
        self.forward.restype = None

    def parameters(self) -> dict[str, np.ndarray]:
        from ..targets.c.int8 import WEIGHTS, read_int8_weights

        return read_int8_weights((self.out.c_dir / WEIGHTS).read_text(encoding="utf-8"))


register(RuntimeKind("c", 55, lambda t: [CTarget(t.out, t.spec)]))
