"""The build folder's manifest: a folder -> manifest.json, sha256 of every artifact and versions.

Takes a BuildDir after export and verify have written into it; hashes every file below it (the
manifest itself and hidden temporary files excepted), records the versions of python, torch, onnx,
onnxruntime and lenetc, seals the whole with its own `digest` (sha256 of the rest, canonical
JSON), and writes manifest.json atomically. `check` recomputes the hashes and returns the files
that differ; verify/integrity.py checks everything (the digest, the exact bytes, each file).
A command that rewrites an artifact of a finished build (verify writes verify.json) calls
`update_entries` for it, so that an intact folder stays consistent with its manifest.
No torch import: versions come from the installed distributions.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
from pathlib import Path

from .. import __version__
from ..artifacts import BuildDir, write_bytes

DISTRIBUTIONS = ("torch", "onnx", "onnxruntime", "onnxscript", "numpy")
# The converters of the optional mobile files: recorded when they wrote one.
MOBILE_DISTRIBUTIONS = {"model.pte": "executorch", "model.tflite": "litert-torch"}


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
    """Every file under the build folder, sorted, but the manifest, its signature (which signs
    the manifest), the report (rewritten from the others by `lenetc report`) and hidden
    temporaries."""
    return sorted(
        p
        for p in out.root.rglob("*")
        if p.is_file()
        and p not in (out.manifest, out.signature, out.report)
        and not any(part.startswith(".") for part in p.relative_to(out.root).parts)
    )


def entry(path: Path) -> dict:
    return {"sha256": sha256(path), "bytes": path.stat().st_size}


def write_manifest(out: BuildDir) -> dict:
    found = versions()
    for name, dist in MOBILE_DISTRIBUTIONS.items():
        if (out.root / name).is_file():
            try:
                found[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                found[dist] = "not installed"
    manifest = {
        "lenetc": __version__,
        "versions": found,
        "artifacts": {p.relative_to(out.root).as_posix(): entry(p) for p in artifact_files(out)},
    }
    return _write(out, manifest)


def digest(manifest: dict) -> str:
    """sha256 of everything in the manifest but the digest itself, as canonical JSON."""
    body = {k: v for k, v in manifest.items() if k != "digest"}
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def serialized(manifest: dict) -> bytes:
    """The exact bytes of a manifest.json as lenetc writes it: any other bytes were edited."""
    return (json.dumps(manifest, indent=2) + "\n").encode("utf-8")


def update_entries(out: BuildDir, names: list[str]) -> dict:
    """Re-hash the named files (relative paths) in an existing manifest, re-seal and rewrite it.

    For a command that rewrites an artifact of a finished build, after checking the folder's
    integrity: the manifest then vouches for the new file. A named file that is gone is dropped.
    """
    manifest = json.loads(out.manifest.read_text(encoding="utf-8"))
    for name in names:
        path = out.root / name
        if path.is_file():
            manifest["artifacts"][name] = entry(path)
        else:
            manifest["artifacts"].pop(name, None)
    manifest["artifacts"] = dict(sorted(manifest["artifacts"].items()))
    return _write(out, manifest)


def _write(out: BuildDir, manifest: dict) -> dict:
    manifest = {k: v for k, v in manifest.items() if k != "digest"}
    manifest["digest"] = digest(manifest)
    write_bytes(out.manifest, serialized(manifest))
    return manifest


def check(out: BuildDir, manifest: dict) -> list[str]:
    """Names whose file is missing or whose sha256 differs from the manifest's (empty: all good)."""
    bad = []
    for name, entry in manifest["artifacts"].items():
        path = out.root / name
        if not path.is_file() or sha256(path) != entry["sha256"]:
            bad.append(name)
    return bad
