"""Whole builds: the same spec and seed give the same artifacts, wherever the build folder is."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from lenetc.build import BuildOptions, build
from tests.test_embed import need

SPECS = Path(__file__).resolve().parent.parent / "specs"
SAME_BYTES = ["model.py", "weights.pt", "model.onnx", "model.pt2", "io.npz", "heldout.npz"]
# when lenetc[mobile] is installed: the runtime whose row reads each (skip or, in CI, fail)
MOBILE = {"model.pte": "executorch", "model.tflite": "litert"}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def payload(path: Path) -> bytes:
    """A file's bytes, or every member's bytes for a zip (torch's formats are zips)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return b"".join(archive.read(name) for name in archive.namelist())
    return path.read_bytes()


@pytest.mark.slow
def test_a_second_build_elsewhere_gives_byte_identical_artifacts(lenet_build, tmp_path):
    # the fixture's options: 2 epochs of lenet5 on the digits, seed 0
    again = build(
        SPECS / "lenet5.yaml", BuildOptions(out=tmp_path / "elsewhere", epochs=2, quiet=True)
    )
    mobile = [n for n in MOBILE if (lenet_build.root / n).is_file()]
    for name in SAME_BYTES + mobile:  # verified deterministic, but exported only where installed
        assert sha(again.folder / name) == sha(lenet_build.root / name), name


@pytest.mark.parametrize("name", ["model.onnx", "model.pt2", "weights.pt", "model.py", *MOBILE])
def test_artifacts_people_embed_carry_no_folder_of_this_machine(lenet_build, name):
    if name in MOBILE:
        need(lenet_build, MOBILE[name])
    data = payload(lenet_build.root / name)
    for leak in (str(lenet_build.root).encode(), b"site-packages", str(Path.home()).encode()):
        assert leak not in data, f"{name} contains {leak!r}"
