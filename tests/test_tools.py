"""The optional tools' promise: `make test` passes without them, naming how to install each.

Runs a slice of the suite (the C target's clang and clang-format checks, the browser tests, the
Node.js and browser runtime rows) in a subprocess whose PATH holds every program of this machine
except the tools of tests/tools.py, and checks that it passes with skips that name `make deps`,
and that under CI=true the same slice fails. Also keeps tools.py, scripts/deps.sh and the README's
table of tools in step, so a tool added to one is added to all.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tools import INSTALL, ROOT, TOOLS

SLICE = (
    "tests/test_c_target.py::test_strict_c99_is_warning_free",
    "tests/test_c_target.py::test_sources_are_clang_formatted_with_the_committed_style",
    "tests/test_look_browser.py",
    "tests/test_embed.py::test_each_example_program_reproduces_io_npz",
)


def _hidden(name: str) -> bool:
    # a cross toolchain is a family of programs (arm-none-eabi-gcc, -size, -objcopy ...)
    return name in TOOLS or name.startswith("arm-none-eabi-") or name.startswith("qemu-")


def _path_without_tools(shadow: Path) -> str:
    """A PATH of one folder linking every program on this PATH but the optional tools."""
    shadow.mkdir()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or not Path(folder).is_dir():
            continue
        for program in Path(folder).iterdir():
            link = shadow / program.name
            if _hidden(program.name) or link.exists() or link.is_symlink():
                continue
            link.symlink_to(program)
    return str(shadow)


def _run_slice(tmp_path: Path, *extra: str, ci: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "CHROMIUM", "CC", "CXX")}
    env["PATH"] = _path_without_tools(tmp_path / "bin")
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *extra, *SLICE],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.mark.slow
def test_the_suite_passes_without_the_optional_tools_and_names_the_install(tmp_path):
    proc = _run_slice(tmp_path, ci=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    skips = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert skips, out[-4000:]
    for line in skips:
        assert INSTALL in line, f"a skip that does not say how to install: {line}"
    for tool in ("clang", "clang-format", "chromium"):
        assert any(f"{tool} is not installed" in s for s in skips), (tool, skips)
    node = "onnxruntime-node unavailable here: node (Node.js) is not on PATH"
    assert any(node in s for s in skips), skips
    assert not re.search(r"\d+ failed", out)


@pytest.mark.slow
def test_under_ci_a_missing_tool_is_a_failure(tmp_path):
    proc = _run_slice(tmp_path, "--maxfail=1", "-k", "clang_formatted", ci=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-4000:]
    expected = f"CI=true, where `{INSTALL}` installs everything, but clang-format is not installed"
    assert expected in out, out[-4000:]


def test_make_deps_installs_every_tool_the_tests_name():
    script = (ROOT / "scripts" / "deps.sh").read_text()
    installed = dict(re.findall(r"^need (\S+) (\S+)$", script, flags=re.M))
    assert installed == {t.command: t.package for t in TOOLS.values()}
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^deps:.*\n\tbash scripts/deps\.sh", makefile, flags=re.M)
    assert "make deps" in (ROOT / ".ci" / "run").read_text()


def test_the_readme_lists_every_tool_with_its_package():
    readme = (ROOT / "README.md").read_text()
    for tool in TOOLS.values():
        row = next((r for r in readme.splitlines() if r.startswith(f"| `{tool.command}` |")), None)
        assert row is not None, f"README has no row for {tool.command} in its table of tools"
        assert f"`{tool.package}`" in row, row
