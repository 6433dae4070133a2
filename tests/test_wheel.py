"""The wheel carries the templates: an installed (non-editable) lenetc renders outside the repo."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (found,) = out.glob("lenetc-*.whl")
    return found


def test_wheel_contains_every_template(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    in_repo = sorted(
        p.relative_to(ROOT / "templates").as_posix() for p in (ROOT / "templates").rglob("*.j2")
    )
    assert in_repo, "no templates in the repo?"
    for rel in in_repo:
        assert f"lenetc/templates/{rel}" in names


def test_wheel_contains_every_module(wheel: Path):
    """Packages are discovered, not listed by hand: a new subpackage ships without a setup edit."""
    names = zipfile.ZipFile(wheel).namelist()
    in_repo = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "lenetc").rglob("*.py"))
    assert len(in_repo) > 40
    missing = [rel for rel in in_repo if rel not in names]
    assert not missing, f"modules missing from the wheel: {missing}"


def test_installed_wheel_renders_from_outside_the_repo(wheel: Path, tmp_path: Path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(target))
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import lenetc.cli, lenetc.targets.templates as t;"
            "print(t.templates_dir()); lenetc.cli.main()",
            "render",
            str(SPECS / "lenet5.yaml"),
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    templates_line, source = result.stdout.split("\n", 1)
    assert Path(templates_line).is_relative_to(target), templates_line
    assert "class LeNet5(nn.Module):" in source
