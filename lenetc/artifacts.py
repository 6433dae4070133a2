"""The build folder: the name of every artifact, atomic writes, and loading the generated module.

Every artifact is written to a temporary file in the same folder, fsynced, then renamed over the
final name, so an interrupted build never leaves a half-written file under an artifact's name.
A write that the system refuses (a read-only folder, a file where a folder should be, a full disk)
is a RuntimeFailure naming the file. What a killed run leaves is only those hidden temporaries;
`remove_leftovers` deletes them, and the next build or verify of the folder calls it.

A write never creates the folder it writes into (a mistyped `-o /no/such/dir/x.py` is refused,
naming the missing folder) and never replaces what is not a regular file: a symlink, a FIFO, a
device node or a folder under the final name is refused, not renamed over. A folder swapped in
whole (`atomic_dir`) keeps the files of the old one that the new one does not write: a user's own
files inside a build folder are never deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import linecache
import os
import re
import shutil
import stat
import sys
import tempfile
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RuntimeFailure, first_line


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
    pte = property(lambda self: self.root / "model.pte")  # ExecuTorch, when installed
    tflite = property(lambda self: self.root / "model.tflite")  # LiteRT, when installed
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
    footprint = property(lambda self: self.root / "footprint.json")  # the C target on a device
    manifest = property(lambda self: self.root / "manifest.json")
    signature = property(lambda self: self.root / "manifest.sig")  # build --sign; not hashed
    report = property(lambda self: self.root / "report.html")  # a view of the above, not hashed

    def require_model(self) -> BuildDir:
        """The folder holds what the torch module needs (spec, model.py, weights), or exit 1."""
        for path in (self.spec, self.model_py, self.weights):
            if not path.is_file():
                raise RuntimeFailure(
                    f"{self.root} is not a complete lenetc build folder (no {path.name})"
                )
        return self

    def refuse_foreign(self, out_option: Path) -> None:
        """A folder that exists under the build's name must be a lenetc build folder (or empty):
        a build replaces its files, so a folder of a user's own files is refused untouched."""
        root = self.root
        if root.is_symlink() or (root.exists() and not root.is_dir()):
            what = special_kind(os.lstat(root).st_mode) if root.is_symlink() else "a file"
            raise RuntimeFailure(f"cannot build into {root}: it is {what}, not a folder")
        if not root.is_dir() or is_build_folder(root):
            return
        try:
            names = sorted(e.name for e in root.iterdir() if not LEFTOVER.match(e.name))
        except OSError as exc:
            raise RuntimeFailure(f"cannot read {root}: {exc.strerror or exc}") from None
        names = [n for n in names if n != ".lenetc.lock"]
        if names:
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            raise RuntimeFailure(
                f"{root} already exists and is not a lenetc build folder (it holds {shown}, and "
                f"no spec.yaml or manifest.json); nothing was changed. Build elsewhere with "
                f"`-o OTHER` (now -o {out_option}), or move or remove {root} first"
            )

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
    refuse_special(final)
    with _cannot_write(final):
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


def refuse_special(final: Path) -> None:
    """`final` may be written only when its folder exists and it is absent or a regular file.

    os.replace would put a regular file in place of a symlink (not through it), a FIFO or a
    device node (as root, `-o /dev/full` would replace the device): refuse in one line instead.
    """
    final = Path(final)
    parent = final.parent
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise RuntimeFailure(
            f"cannot write {final}: the folder {parent} {what}; create it first or choose "
            "another path (lenetc does not create folders it was not asked for)"
        )
    try:
        mode = os.lstat(final).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise RuntimeFailure(f"cannot write {final}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise RuntimeFailure(
            f"cannot write {final}: it is {special_kind(mode)}, not a regular file; lenetc "
            "replaces only regular files (choose another path, or remove it first)"
        )


def special_kind(mode: int) -> str:
    """What a non-regular file is, as a phrase: `a symlink`, `a FIFO (named pipe)`..."""
    for test, name in (
        (stat.S_ISLNK, "a symlink"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def make_folder(folder: Path) -> None:
    """Create `folder` itself (an `-o DIR` the user named) when absent, but not its parents."""
    folder = Path(folder)
    if folder.is_dir() and not folder.is_symlink():
        return
    refuse_special(folder)  # a missing parent, or something else under the name
    with _cannot_write(folder):
        folder.mkdir()


def not_a_regular_file(path: Path) -> str | None:
    """Why an input file cannot be read as one (None when it can): absent, a folder, or a FIFO,
    device or socket, whose read would block forever (a FIFO with no writer) or never end
    (/dev/zero). A symlink to a regular file is fine: it is read, not written."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot read it ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    return f"is {special_kind(mode)}, not a regular file; give a file (or a copy of its data)"


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
    new files, or a half-written one. When the old folder holds names the new one does not write
    (a user's `c/mine.c`, a compiled program), it is kept instead and each new file is renamed
    into it, one atomic rename per file: lenetc replaces its own files, deletes nothing else, and
    never moves a user's file (a kill at any moment leaves it where it was).
    """
    if final.is_symlink() or (final.exists() and not final.is_dir()):
        what = special_kind(os.lstat(final).st_mode) if final.is_symlink() else "a file"
        raise RuntimeFailure(f"cannot write the folder {final}: it is {what}, not a folder")
    if not final.parent.is_dir():
        refuse_special(final)  # names the missing folder
    with _cannot_write(final):
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
        if final.exists() and _holds_others(final, tmp):
            for path in sorted(tmp.iterdir()):
                os.replace(path, final / path.name)
            _fsync_dir(final)
            return
        if final.exists():
            old = final.with_name(f"{tmp.name}.old")
            os.replace(final, old)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    finally:
        for leftover in (tmp, old):
            if leftover is not None and leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)


def _holds_others(old: Path, new: Path) -> bool:
    """Whether `old` holds an entry that `new` (flat: files only) does not replace."""
    written = {p.name for p in new.iterdir() if p.is_file()}
    if any(p.is_dir() for p in new.iterdir()):
        return False  # not for nested folders: swap whole, as before
    return any(e.name not in written and not LEFTOVER.match(e.name) for e in old.iterdir())


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


def is_build_folder(folder: Path) -> bool:
    """A folder lenetc built (finished: manifest.json; or begun: spec.yaml, its first file)."""
    return (folder / "manifest.json").is_file() or (folder / "spec.yaml").is_file()


def build_folders_in(folder: Path) -> list[Path]:
    """The build folders directly inside `folder` (for `lenetc verify build`: name them)."""
    try:
        children = sorted(p for p in Path(folder).iterdir() if p.is_dir())
    except OSError:
        return []
    return [p for p in children if is_build_folder(p)]


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


def load_pt(path: Path, failure: type[Exception] = RuntimeFailure) -> Any:
    """A .pt file read with torch.load(weights_only=True) onto the CPU: tensors and plain
    containers only, never a pickle's code. A file torch cannot read raises `failure` with one
    line naming it (never torch's advice to load it unsafely); a file the system cannot read is
    a RuntimeFailure."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise failure(f"{path}: missing") from None
    except OSError as exc:
        raise RuntimeFailure(f"cannot read {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # torch raises many types for a foreign or damaged file
        raise failure(f"{path}: not a torch file lenetc can read ({pt_error(exc)})") from None


def pt_error(exc: BaseException) -> str:
    """Why torch.load failed, in words: empty, cut short, or holding pickled objects."""
    if isinstance(exc, EOFError):
        return "it is empty"
    if "PytorchStreamReader" in str(exc) or "zip archive" in str(exc):
        return "not a complete torch zip archive: truncated or another kind of file"
    return first_line(exc, typed=True)
