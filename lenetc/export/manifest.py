"""The build folder's manifest: a folder -> manifest.json, sha256 of every artifact and versions.

Takes a BuildDir after export and verify have written into it; hashes every file below it (the
manifest itself and hidden temporary files excepted), records the versions of python, torch, onnx,
onnxruntime and lenetc, and writes manifest.json atomically. `check` recomputes the hashes and
returns the files that differ. No torch import: versions come from the installed distributions.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
from pathlib import Path

from .. import __version__
from ..artifacts import BuildDir, write_json

DISTRIBUTIONS = ("torch", "onnx", "onnxruntime", "onnxscript", "numpy")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "lenetc": __version__}
    for dist in DISTRIBUTIONS:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def artifact_files(out: BuildDir) -> list[Path]:
    """Every file under the build folder, sorted, but the manifest, the report (rewritten from the
    others by `lenetc report`) and hidden temporaries."""
    return sorted(
        p
        for p in out.root.rglob("*")
        if p.is_file()
        and p not in (out.manifest, out.report)
        and not any(part.startswith(".") for part in p.relative_to(out.root).parts)
    )


def write_manifest(out: BuildDir) -> dict:
    manifest = {
        "lenetc": __version__,
        "versions": versions(),
        "artifacts": {
            p.relative_to(out.root).as_posix(): {"sha256": sha256(p), "bytes": p.stat().st_size}
            for p in artifact_files(out)
        },
    }
    write_json(out.manifest, manifest)
    return manifest


def check(out: BuildDir, manifest: dict) -> list[str]:
    """Names whose file is missing or whose sha256 differs from the manifest's (empty: all good)."""
    bad = []
    for name, entry in manifest["artifacts"].items():
        path = out.root / name
        if not path.is_file() or sha256(path) != entry["sha256"]:
            bad.append(name)
    return bad
