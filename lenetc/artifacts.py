"""The build folder: the name of every artifact, atomic writes, and loading the generated module.

Every artifact is written to a temporary file in the same folder, fsynced, then renamed over the
final name, so an interrupted build never leaves a half-written file under an artifact's name.
A write that the system refuses (a read-only folder, a file where a folder should be, a full disk)
is a RuntimeFailure naming the file. What a killed run leaves is only those hidden temporaries;
`remove_leftovers` deletes them, and the next build or verify of the folder calls it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import linecache
import os
import re
import shutil
import sys
import tempfile
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RuntimeFailure


@dataclass(frozen=True)
class BuildDir:
    """build/<spec name>/ and the fixed names of what lives in it (README.md: The build folder)."""

    root: Path

    spec = property(lambda self: self.root / "spec.yaml")
    model_py = property(lambda self: self.root / "model.py")
    weights = property(lambda self: self.root / "weights.pt")
    onnx = property(lambda self: self.root / "model.onnx")
    torchscript = property(lambda self: self.root / "model.torchscript.pt")
    pt2 = property(lambda self: self.root / "model.pt2")
    metrics = property(lambda self: self.root / "metrics.jsonl")
    checkpoint = property(lambda self: self.root / "checkpoint.pt")
    heldout = property(lambda self: self.root / "heldout.npz")  # real test samples for verify
    io_npz = property(lambda self: self.root / "io.npz")
    int8_onnx = property(lambda self: self.root / "model.int8.onnx")  # QDQ (quant/qdq.py)
    calibration = property(lambda self: self.root / "calibration.npz")  # samples for SQNR
    c_dir = property(lambda self: self.root / "c")  # the C target (export/c_weights.py)
    test_data = property(lambda self: self.root / "test_data_set_0")
    verify_json = property(lambda self: self.root / "verify.json")
    train_json = property(lambda self: self.root / "train.json")
    manifest = property(lambda self: self.root / "manifest.json")
    report = property(lambda self: self.root / "report.html")  # a view of the above, not hashed

    def require_model(self) -> BuildDir:
        """The folder holds what the torch module needs (spec, model.py, weights), or exit 1."""
        for path in (self.spec, self.model_py, self.weights):
            if not path.is_file():
                raise RuntimeFailure(
                    f"{self.root} is not a complete lenetc build folder (no {path.name})"
                )
        return self

    def create(self) -> BuildDir:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RuntimeFailure(
                f"cannot create the build folder {self.root}: {exc.strerror or exc}"
            ) from None
        if not os.access(self.root, os.W_OK):
            raise RuntimeFailure(f"the build folder {self.root} is not writable")
        return self


@contextlib.contextmanager
def atomic_path(final: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `final`; on success fsync it and rename it over `final`.

    The temporary name is hidden (a leading dot), holds `.tmp` and ends in `suffix`, for libraries
    that check the extension (torch.export.save wants `.pt2`). mkstemp creates files 0600; the
    artifact gets the mode an ordinary open() would give it (0666 less the umask), since others
    read builds.
    """
    with _cannot_write(final):
        final.parent.mkdir(parents=True, exist_ok=True)
        suffix = suffix if suffix.startswith(".tmp") else f".tmp{suffix}"  # see LEFTOVER
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with _cannot_write(final):
            yield tmp
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, final)
        _fsync_dir(final.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def _cannot_write(final: Path) -> Iterator[None]:
    """An OSError while writing `final` -> one RuntimeFailure line that names it and says why."""
    try:
        yield
    except OSError as exc:
        why = exc.strerror or str(exc)
        if isinstance(exc, (FileExistsError, NotADirectoryError)):
            why = f"{Path(exc.filename or final.parent)} is a file, not a folder"
        elif isinstance(exc, PermissionError):
            why = f"permission denied ({final.parent} is not writable)"
        elif exc.filename and Path(exc.filename) not in (final, final.parent):
            why += f": {exc.filename}"
        raise RuntimeFailure(f"cannot write {final}: {why}") from None


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary folder beside `final`; on success fsync its files and swap it in.

    A folder cannot be renamed over a non-empty one, so an old `final` is first renamed aside
    and removed after the new one is in place: at no moment does `final` hold a mix of old and
    new files, or a half-written one.
    """
    with _cannot_write(final):
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    old = None
    try:
        yield tmp
        for path in sorted(tmp.rglob("*")):
            if path.is_file():
                with open(path, "rb+") as handle:
                    os.fsync(handle.fileno())
                os.chmod(path, 0o666 & ~_umask())
        os.chmod(tmp, 0o777 & ~_umask())
        _fsync_dir(tmp)
        if final.exists():
            old = final.with_name(f"{tmp.name}.old")
            os.replace(final, old)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    finally:
        for leftover in (tmp, old):
            if leftover is not None and leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)


# What atomic_path and atomic_dir leave when their process is killed: `.<name>.<8 random>.tmp`
# (mkstemp's random part; `.tmp.pt2` with a suffix), `.<folder>.<8 random>.tmp.old`, and
# lock.py's `.lenetc.lock.<pid>`. Nothing else: a user's own hidden files stay.
LEFTOVER = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$|^\.lenetc\.lock\.\d+$")


def remove_leftovers(root: Path) -> list[str]:
    """Delete the temporaries an interrupted run left anywhere under `root`; return their names.

    Only call it while holding the folder's lock (lock.py): a live run's temporaries look the same.
    """
    removed = []
    for folder, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            if not LEFTOVER.match(name):
                continue
            path = Path(folder, name)
            with contextlib.suppress(OSError):
                if name in dirs:
                    shutil.rmtree(path)
                    dirs.remove(name)
                else:
                    path.unlink()
                removed.append(path.relative_to(root).as_posix())
    return removed


def build_folders_in(folder: Path) -> list[Path]:
    """The build folders directly inside `folder` (for `lenetc verify build`: name them)."""
    try:
        children = sorted(p for p in Path(folder).iterdir() if p.is_dir())
    except OSError:
        return []
    return [p for p in children if (p / "manifest.json").is_file() or (p / "spec.yaml").is_file()]


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be fsynced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes(final: Path, data: bytes) -> None:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def write_text(final: Path, text: str) -> None:
    write_bytes(final, text.encode("utf-8"))


def write_json(final: Path, value: Any) -> None:
    write_text(final, json.dumps(value, indent=2, sort_keys=False) + "\n")


def write_with(final: Path, writer: Callable[[Path], None], suffix: str = ".tmp") -> None:
    """Atomically write a file that a library insists on writing itself (torch.save, onnx.save)."""
    with atomic_path(final, suffix) as tmp:
        writer(tmp)


def load_module_class(model_py: Path, class_name: str) -> type:
    """Import the generated model.py from a build folder and return its nn.Module class.

    The module is named after a hash of its source, not its path: exporters record the module
    and file name in TorchScript, .pt2 and ONNX debug info, and an artifact must carry neither
    this machine's folders nor a name that changes from build to build.
    """
    return module_class_from_source(model_py.read_text(encoding="utf-8"), class_name, model_py)


def module_class_from_source(source: str, class_name: str, origin: Path) -> type:
    """load_module_class for source held in memory (a rank that must not read the build folder
    while rank 0 writes it); `origin` only names it in errors."""
    model_py = origin
    name = f"lenetc_model_{hashlib.sha256(source.encode()).hexdigest()[:16]}"
    filename = f"{name}.py"
    # torch.jit.script reads the class's source through linecache by file name
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module  # torch.jit.script resolves the class's globals through it
    try:
        exec(compile(source, filename, "exec"), module.__dict__)
    except SyntaxError as exc:
        raise RuntimeFailure(f"{model_py} is not valid Python: {exc}") from None
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise RuntimeFailure(f"{model_py} has no class {class_name}") from None
