"""Stage 6b, verify (the command): a build folder -> integrity, then parity, under its lock.

Takes the build folder, tolerances and the required devices; returns the parity Report and notes
for the user. In order: the folder must be a build folder (else exit 1, naming the build folders
inside it); take its lock (lock.py: a build or verify already in it refuses this one); remove the
temporaries an interrupted run left; check integrity (integrity.py, with a key signature.py, then
agreement.py: exit 4 before any parity is run); run parity (parity.py), write verify.json and
refresh its entry in manifest.json, so an intact folder stays consistent. A read-only folder is
checked and proven all the same; only verify.json and the manifest are left as they were, and a
note says so.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..artifacts import remove_leftovers
from ..export.manifest import update_entries
from ..lock import folder_lock
from .agreement import check_build
from .integrity import require_build_folder
from .parity import verify_build
from .results import Report


def verify_folder(
    root: Path,
    atol: float | None = None,
    rtol: float | None = None,
    require: tuple[str, ...] = (),
    runtimes: tuple[str, ...] = (),
    key: Path | None = None,
) -> tuple[Report, list[str]]:
    out = require_build_folder(Path(root))
    notes = []
    with folder_lock(out.root, f"lenetc verify {root}"):
        writable = os.access(out.root, os.W_OK)
        if writable:
            removed = remove_leftovers(out.root)
            if removed:
                notes.append(f"removed what an interrupted run left: {', '.join(removed)}")
        check_build(out.root, key)
        report = verify_build(
            out.root, atol=atol, rtol=rtol, require=require, runtimes=runtimes, write=writable
        )
        if writable:
            update_entries(out, [out.verify_json.name])
        else:
            notes.append(f"{out.root} is read-only: verify.json was not rewritten")
    return report, notes
