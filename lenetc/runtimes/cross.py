"""Runtimes (cross): the C target on an emulated Cortex-M, with the Arm GNU toolchain and QEMU.

Takes C sources by name (a build's c/ files and a program: c/selftest.c, or the device program
templates/mcu/run.c.j2) and a `Core`; `firmware` compiles them with arm-none-eabi-gcc beside the
startup code and linker script shipped in templates/mcu/ (no vendor SDK; semihosting through
newlib's librdimon) into an ELF, cached by the sources' hash, the flags and the compiler;
`run_qemu` runs an ELF on the core's QEMU board with a deadline that kills QEMU, and returns what
it printed, or a RuntimeProblem (a fault on the device says which); `size` is arm-none-eabi-size's
text / data / bss. `missing` says which tool is absent and how to install it.

Cortex-M4F gets hard float (FPv4-SP), Cortex-M3 soft float (libgcc's IEEE routines); both build
with the Makefile's -O2 -ffp-contract=off, so their sums and products round as the host's do.
Under `-icount shift=0` QEMU's clock advances 1 ns per executed instruction and the boards' SysTick
counts the 25 MHz processor clock: one tick is 40 emulated instructions.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..targets.templates import environment
from .base import RuntimeProblem
from .process import run_program

GCC, SIZE, QEMU = "arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm"
INSTALL = "make deps (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)"
C_FLAGS = ("-std=c99", "-O2", "-ffp-contract=off", "-ffunction-sections", "-fdata-sections")
LINK_FLAGS = ("--specs=rdimon.specs", "-nostartfiles", "-Wl,--gc-sections", "-T", "mps2.ld")
FIRMWARE = {"startup.c": "mcu/startup.c.j2", "mps2.ld": "mcu/mps2.ld.j2"}
INSTRUCTIONS_PER_TICK = 40  # -icount shift=0: 1 ns an instruction; SysTick at 25 MHz: 40 ns
COMPILE_TIMEOUT = 300.0
FAULT_STATUS = 70  # templates/mcu/startup.c.j2's fault handler exits with it


@dataclass(frozen=True)
class Core:
    name: str  # as -mcpu spells it: cortex-m4
    board: str  # QEMU's machine
    flags: tuple[str, ...]
    floats: str  # how it computes floats, for the tables

    @property
    def label(self) -> str:
        return f"{self.name}, {self.floats}"


CORES = (
    Core(
        "cortex-m4",
        "mps2-an386",
        ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"),
        "hard float",
    ),
    Core(
        "cortex-m3", "mps2-an385", ("-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"), "soft float"
    ),
)


def core(name: str) -> Core:
    return next(c for c in CORES if c.name == name)


def missing() -> str | None:
    """Why the cross build cannot run here (a tool or newlib missing, and the install), or None."""
    for tool in (GCC, SIZE, QEMU):
        if shutil.which(tool) is None:
            return f"{tool} is not installed; install: {INSTALL}"
    if not _has_newlib(shutil.which(GCC) or GCC):
        return f"{GCC} has no newlib (rdimon.specs); install: {INSTALL}"
    return None


@functools.cache
def _has_newlib(gcc: str) -> bool:
    found = subprocess.run(
        [gcc, "-print-file-name=rdimon.specs"], capture_output=True, text=True, timeout=30
    )
    return found.returncode == 0 and Path(found.stdout.strip()).is_absolute()


def firmware_sources() -> dict[str, str]:
    """The startup code and linker script of templates/mcu/, by file name."""
    env = environment()
    return {name: env.get_template(template).render() for name, template in FIRMWARE.items()}


def firmware(core: Core, sources: Mapping[str, str], program: str, name: str = "firmware") -> Path:
    """An ELF for `core` from C sources by file name (headers included), `program` the file with
    main; compiled once per sources, flags and compiler, in a per-user cache."""
    files = {**firmware_sources(), **sources}
    gcc = shutil.which(GCC) or GCC
    units = ["startup.c", program] + sorted(
        n for n in files if n.endswith(".c") and n not in ("startup.c", program)
    )
    command = [gcc, *core.flags, *C_FLAGS, *LINK_FLAGS, "-o", f"{name}.elf", *units, "-lm"]
    final = _cached(command, files, ".elf")
    if not final.is_file():
        _compile(command, files, final, f"{name}.elf")
    return final


def object_size(core: Core, sources: Mapping[str, str], unit: str) -> dict[str, int]:
    """text / data / bss of one translation unit compiled for `core` (the model alone)."""
    gcc = shutil.which(GCC) or GCC
    command = [gcc, *core.flags, *C_FLAGS, "-c", "-o", "unit.o", unit]
    final = _cached(command, sources, ".o")
    if not final.is_file():
        _compile(command, sources, final, "unit.o")
    return size(final)


def size(path: Path) -> dict[str, int]:
    """arm-none-eabi-size's text, data and bss of an ELF or object file, in bytes."""
    done = subprocess.run(
        [shutil.which(SIZE) or SIZE, "-B", str(path)], capture_output=True, text=True, timeout=60
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or len(lines) < 2:
        raise RuntimeProblem(f"{SIZE} could not read {path.name}: {done.stderr.strip()}")
    text, data, bss = (int(v) for v in lines[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def run_qemu(
    elf: Path, core: Core, cwd: Path | None = None, timeout: float = 120.0, icount: bool = True
) -> str:
    """Run an ELF on core's board with semihosting (its files relative to `cwd`); its output.
    A non-zero exit status is a RuntimeProblem with the program's first line (a fault: which)."""
    command = [shutil.which(QEMU) or QEMU, "-M", core.board, "-nographic"]
    command += ["-semihosting-config", "enable=on,target=native"]
    if icount:  # a deterministic clock: SysTick then counts executed instructions
        command += ["-icount", "shift=0"]
    command += ["-kernel", str(elf)]
    try:
        return run_program(command, timeout, cwd=cwd)
    except RuntimeProblem as exc:
        raise RuntimeProblem(f"{core.name} under QEMU ({core.board}): {exc}") from None


def _cached(command: list[str], files: Mapping[str, str], suffix: str) -> Path:
    digest = hashlib.sha256(repr(command).encode() + _version().encode())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    cache = Path(tempfile.gettempdir()) / f"lenetc-mcu-{os.getuid()}"
    cache.mkdir(mode=0o700, exist_ok=True)
    return cache / f"{digest.hexdigest()[:24]}{suffix}"


def compiler_version() -> str:
    """arm-none-eabi-gcc's first line of --version."""
    return _version()


@functools.cache
def _version() -> str:
    done = subprocess.run(
        [shutil.which(GCC) or GCC, "--version"], capture_output=True, text=True, timeout=30
    )
    return done.stdout.splitlines()[0] if done.stdout else ""


def _compile(command: list[str], files: Mapping[str, str], final: Path, output: str) -> None:
    with tempfile.TemporaryDirectory(prefix="lenetc-mcu-") as tmp:
        for name, text in files.items():
            (Path(tmp) / name).write_text(text, encoding="utf-8")
        try:
            run_program(command, COMPILE_TIMEOUT, cwd=Path(tmp))
        except RuntimeProblem as exc:
            raise RuntimeProblem(f"cross-compiling {output}: {exc}") from None
        staged = final.with_suffix(final.suffix + f".{os.getpid()}")
        shutil.copyfile(Path(tmp) / output, staged)
        os.replace(staged, final)
