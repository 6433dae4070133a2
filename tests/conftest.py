"""Shared test fixtures: golden files (regenerate with --update-golden) and one small real build."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
GOLDEN = Path(__file__).resolve().parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/ files from the current output instead of comparing",
    )


class Golden:
    """Compare text with tests/golden/<name>; with --update-golden, write it instead."""

    def __init__(self, update: bool) -> None:
        self.update = update

    def check(self, name: str, actual: str) -> None:
        path = GOLDEN / name
        if self.update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual, encoding="utf-8")
            return
        assert path.exists(), f"no golden file {path}; run pytest --update-golden to create it"
        expected = path.read_text(encoding="utf-8")
        assert actual == expected, (
            f"output differs from {path} (pytest --update-golden rewrites it)"
        )


@pytest.fixture(scope="session")
def golden(request: pytest.FixtureRequest) -> Golden:
    return Golden(request.config.getoption("--update-golden"))


@pytest.fixture(scope="session")
def lenet_build(tmp_path_factory: pytest.TempPathFactory):
    """A real, complete LeNet-5 build (2 epochs on digits): the folder export and verify tests read.

    Session-scoped because it trains and exports (~10 s); tests must not modify it: copy it first.
    """
    from lenetc.artifacts import BuildDir
    from lenetc.build import BuildOptions, build

    out = tmp_path_factory.mktemp("builds")
    result = build(SPECS / "lenet5.yaml", BuildOptions(out=out, epochs=2, quiet=True))
    return BuildDir(result.folder)
