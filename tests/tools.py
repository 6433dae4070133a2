"""Optional system tools: a test that needs one skips outside CI naming its install, fails in CI.

`make test` must pass on a bare machine (Python, make, a C/C++ compiler, git), so nothing here is
required; `make deps` (scripts/deps.sh) installs every one, and `.ci/run` runs it with CI=true,
where a missing tool is a failure: CI never passes by skipping. tests/test_tools.py keeps this
table, the script and the README's table in step, and runs a slice of the suite without the tools.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALL = "make deps"


@dataclass(frozen=True)
class Tool:
    command: str  # looked up on PATH
    package: str  # the Debian package that provides it (what scripts/deps.sh installs)
    needed_by: str


TOOLS = {
    tool.command: tool
    for tool in (
        Tool("clang", "clang", "the C target's strict-C99 build with a second compiler"),
        Tool("clang-format", "clang-format", "the C target's format check"),
        Tool("chromium", "chromium", "onnxruntime-web[chromium] and report.html's browser tests"),
        Tool("node", "nodejs", "onnxruntime-node, onnxruntime-web and report.html's browser tests"),
        Tool("npm", "npm", "installing js/node_modules (pinned in js/package-lock.json)"),
        Tool("arm-none-eabi-gcc", "gcc-arm-none-eabi", "the Cortex-M cross build (with newlib)"),
        Tool("qemu-system-arm", "qemu-system-arm", "the Cortex-M rows, run on emulated boards"),
    )
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(message: str) -> None:
    """Skip outside CI, fail under CI=true: what a test does when an optional tool is missing."""
    if in_ci():
        pytest.fail(f"CI=true, where `{INSTALL}` installs everything, but {message}")
    pytest.skip(message)


def require_tool(command: str) -> str:
    """The tool's path, or a skip (a failure in CI) naming the command that installs it."""
    found = shutil.which(command)
    if found is None:
        tool = TOOLS[command]
        unavailable(
            f"{command} is not installed (needed by {tool.needed_by}); "
            f"install: {INSTALL} (apt-get install {tool.package})"
        )
    return found


def require_node_modules(package: str) -> Path:
    """js/node_modules/<package>, installed by `make deps` from js/package-lock.json."""
    require_tool("node")
    folder = ROOT / "js" / "node_modules" / package
    if not folder.is_dir():
        unavailable(f"the npm package {package} is not in js/node_modules; install: {INSTALL}")
    return folder
