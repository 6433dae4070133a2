"""Runtime libtorch[c++]: model.torchscript.pt loaded by libtorch in a compiled C++ program.

The program is examples/cpp/classify.cpp, the one the README's Embedding section documents,
compiled with the system C++ compiler against the installed torch wheel's own headers and shared
libraries (torch/include, torch/lib), with the C++ ABI torch was built with. It is compiled once
and cached by the hash of its sources, the torch version and the command line, under
$XDG_CACHE_HOME/lenetc/libtorch/ (default ~/.cache), outside any build folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from .base import RuntimeProblem
from .process import ProgramRuntime, examples_dir, run_program
from .registry import RuntimeKind, register
from .torchscript import TorchScript

SOURCES = ("classify.cpp", "onnx_proto.h")
COMPILE_TIMEOUT = 900.0  # torch's headers are large: ~15 s on an idle core, minutes on a busy one


def compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lenetc" / "libtorch"


def compile_command(cxx: str, source: Path, output: Path) -> list[str]:
    import torch

    root = Path(torch.__file__).resolve().parent
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    return [
        cxx,
        "-std=c++17",
        "-O2",
        f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
        f"-I{root / 'include'}",
        f"-I{root / 'include' / 'torch' / 'csrc' / 'api' / 'include'}",
        str(source),
        "-o",
        str(output),
        f"-L{root / 'lib'}",
        f"-Wl,-rpath,{root / 'lib'}",
        "-ltorch",
        "-ltorch_cpu",
        "-lc10",
    ]


def program() -> Path:
    """The compiled example, from the cache or compiled now (atomically: a rename into place)."""
    import torch

    cxx = compiler()
    sources = examples_dir() / "cpp"
    digest = hashlib.sha256(torch.__version__.encode())
    for name in SOURCES:
        digest.update((sources / name).read_bytes())
    digest.update(" ".join(compile_command(cxx, Path("x"), Path("y"))).encode())
    folder = cache_root() / digest.hexdigest()[:16]
    binary = folder / "classify"
    if binary.is_file():
        return binary
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".compiling-") as tmp:
        staged = Path(tmp) / "classify"
        try:
            run_program(compile_command(cxx, sources / "classify.cpp", staged), COMPILE_TIMEOUT)
        except RuntimeProblem as exc:
            raise RuntimeProblem(f"compiling examples/cpp/classify.cpp failed: {exc}") from exc
        os.replace(staged, binary)
    return binary


class LibTorch(ProgramRuntime, TorchScript):
    """Its parameters and submodules are read from the same file by torch.jit.load in Python."""

    kind = "libtorch"

    def __init__(self, out, spec) -> None:
        super().__init__(out, spec, "cpu")
        self.name = "libtorch[c++]"

    def unavailable(self) -> str | None:
        import torch

        if compiler() is None:
            return "no C++ compiler (g++, c++ or $CXX); install: apt-get install g++"
        if not (Path(torch.__file__).parent / "include" / "torch" / "script.h").is_file():
            return f"torch {torch.__version__} ships no C++ headers (torch/include/torch/script.h)"
        return None

    def load(self) -> None:
        super().load()  # torch.jit.load: the parameters, and the layers for locating a divergence
        self.binary = program()

    def command(self, cases: Path, model: Path | None):
        return [str(self.binary), str(self.out.root), "--cases", str(cases)], {}


register(RuntimeKind("libtorch", 100, lambda t: [LibTorch(t.out, t.spec)]))
