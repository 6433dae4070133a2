"""Runtimes (footprint): a build folder -> footprint.json, the C target's memory on a device,
stated and measured.

Takes the build folder (c/ with selftest.c) and its spec; writes footprint.json atomically and
returns its object: `stated`, what `lenetc check` states from the buffer plan per variant
(targets/c/footprint.py); `target`, the spec's budget; `measured`, per variant and Cortex-M core
(`c[cortex-m4]`), arm-none-eabi-size's text / data / bss of the model alone (model.c compiled to
an object: its code, weights and arena; flash = text + data, RAM = data + bss) and of the whole
self-test program (startup code, newlib's printf, the golden samples), with the compiler and flags.
Without the toolchain `measured` says why and how to install it; a compile that fails says so,
and verify's rows then fail with it.
"""

from __future__ import annotations

from pathlib import Path

from ..artifacts import BuildDir, write_json
from ..check.shapes import check
from ..spec.load import Spec
from ..targets.c.footprint import footprint_json, footprints
from . import cross
from .base import RuntimeProblem
from .qemu import VARIANTS


def measure(out: BuildDir, spec: Spec) -> dict:
    data: dict = {
        "stated": footprint_json(footprints(check(spec))),
        "target": {"flash": spec.target.flash, "ram": spec.target.ram},
    }
    why = cross.missing()
    if why is not None:
        data["measured"] = {"unavailable": why}
        return data
    data["compiler"] = cross.compiler_version()
    data["flags"] = " ".join(cross.C_FLAGS)
    measured: dict = {}
    for variant in VARIANTS:
        try:
            sources = {n: _read(out.c_dir / n) for n in variant.sources}
            program = None  # the self-test with the model, where the variant has one
            if variant.selftest:
                program = {**sources, variant.selftest: _read(out.c_dir / variant.selftest)}
        except OSError as exc:
            measured[variant.build(cross.CORES[0])] = {"failed": f"cannot read c/: {exc}"}
            continue
        for core in cross.CORES:
            try:
                model = cross.object_size(core, sources, variant.sources[0])
                whole = None
                if program is not None and variant.selftest:
                    elf = cross.firmware(core, program, variant.selftest, "selftest")
                    whole = cross.size(elf)
            except RuntimeProblem as exc:
                measured[variant.build(core)] = {"failed": str(exc)}
                continue
            measured[variant.build(core)] = {
                "core": core.label,
                "board": core.board,
                "model": model,
                "selftest": whole,
                "flash_bytes": model["text"] + model["data"],
                "ram_bytes": model["data"] + model["bss"],
            }
    data["measured"] = measured
    return data


def write_footprint(out: BuildDir, spec: Spec) -> dict:
    data = measure(out, spec)
    write_json(out.footprint, data)
    return data


def summary(data: dict) -> str:
    """One line for the build's log."""
    stated = data["stated"]["float"]
    text = f"footprint: RAM {stated['ram_bytes']:,} bytes, flash {stated['flash_bytes']:,} + code"
    for name, m in data["measured"].items():
        if isinstance(m, dict) and "flash_bytes" in m:
            text += f"; {name}: model {m['flash_bytes']:,} flash, {m['ram_bytes']:,} RAM"
    if "unavailable" in data["measured"]:
        text += f" (not measured: {data['measured']['unavailable']})"
    return text


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")
