"""The command line end to end: exit codes 0/1/2 and the first line of each error.

(Exit 3, a parity failure, is exercised in the verify tests, which corrupt a real build.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from lenetc import __version__
from lenetc.cli import main

SPECS = Path(__file__).resolve().parent.parent / "specs"

LENET = str(SPECS / "lenet5.yaml")


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_help_lists_every_command():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("check", "render", "build", "verify", "predict"):
        assert command in result.output


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.output


def test_check_succeeds_and_shows_the_lenet_derivation():
    result = run("check", LENET)
    assert result.exit_code == 0, result.output
    for step in (
        "32 - 5 + 1 = 28",
        "28 / 2 = 14",
        "14 - 5 + 1 = 10",
        "10 / 2 = 5",
        "16 x 5 x 5 = 400",
        "61,706",
    ):
        assert step in result.output


def test_check_json_has_the_contract_keys():
    result = run("check", LENET, "--json")
    value = json.loads(result.output)
    assert {"name", "input_shape", "output_shape", "params", "flops", "layers"} <= value.keys()
    assert value["params"] == 61706 and value["output_shape"] == [10]
    assert [layer["name"] for layer in value["layers"]][:3] == ["conv1", "relu1", "pool1"]
    assert {"name", "type", "output_shape", "params", "flops"} <= value["layers"][0].keys()


def test_bad_spec_exits_2_with_a_located_line(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        Path(LENET)
        .read_text()
        .replace("out_features: 120}", "out_features: 120, in_features: 576}")
    )
    result = run("check", str(bad))
    assert result.exit_code == 2
    first = result.output.splitlines()[0]
    assert first.startswith(
        f"{bad}:15: layer fc1 (linear): in_features is 576, but its input has "
        "400 features (16 x 5 x 5)"
    )
    assert "hint: remove in_features to infer it, or set it to 400" in result.output
    assert "Traceback" not in result.output


def test_missing_spec_file_exits_2(tmp_path: Path):
    result = run("check", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "nope.yaml" in result.output and "Traceback" not in result.output


def test_unknown_command_and_option_are_usage_errors():
    assert run("frobnicate").exit_code == 2
    assert run("check", LENET, "--frob").exit_code == 2


def test_unwritable_build_folder_exits_1(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run("build", LENET, "-o", str(blocker / "sub"))
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1


def test_render_writes_only_the_named_file(tmp_path: Path):
    target = tmp_path / "model.py"
    result = run("render", LENET, "-o", str(target))
    assert result.exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.py"]
    assert "class LeNet5(nn.Module):" in target.read_text()


def test_check_writes_nothing(tmp_path: Path):
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(SPECS.parent), os.environ.get("PYTHONPATH", "")]),
    )
    done = subprocess.run(
        [sys.executable, "-m", "lenetc", "check", LENET],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []


def test_readme_shows_the_current_check_table(monkeypatch):
    monkeypatch.chdir(SPECS.parent)  # the README shows the command as run from the repo root
    table = run("check", "specs/lenet5.yaml").output.rstrip()
    readme = (SPECS.parent / "README.md").read_text(encoding="utf-8")
    assert "```\n" + table + "\n```" in readme, "README's `lenetc check` example is out of date"
