"""Careless and hostile use (issue 23): nothing destroyed, nothing written where it was not asked,
and every refusal one line with its exit code (README, "Exit codes"), never a traceback."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from lenetc.cli import main

ROOT = Path(__file__).resolve().parent.parent
LENET = str(ROOT / "specs" / "lenet5.yaml")


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


# ---- 1. render -o / draw -o never replace what is not a regular file -------------------------


@pytest.mark.parametrize("command", ["render", "draw"])
@pytest.mark.parametrize("kind", ["fifo", "symlink", "symlink_to_missing", "folder"])
def test_output_over_a_special_file_is_refused_and_left_as_it_was(tmp_path, command, kind):
    target = tmp_path / "out"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "symlink":
        target.symlink_to(victim)
    elif kind == "symlink_to_missing":
        target.symlink_to(tmp_path / "nowhere")
    else:
        target.mkdir()
    before = os.lstat(target)
    result = run(command, LENET, "-o", target)
    if kind == "folder" and command == "draw":  # click refuses it first, as a usage error
        assert result.exit_code == 2 and "Traceback" not in result.output
    else:
        assert str(target) in one_line_error(result, 1)
    after = os.lstat(target)
    assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode)
    assert after.st_ino == before.st_ino and victim.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", "victim.txt"])


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
def test_output_to_a_device_node_is_refused():
    line = one_line_error(run("render", LENET, "-o", "/dev/null"), 1)
    assert "character device" in line
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)


@pytest.mark.parametrize("args", [("render",), ("draw",), ("render", "--target", "c")])
def test_output_into_a_missing_folder_names_it_and_creates_nothing(tmp_path, args):
    target = tmp_path / "no" / "such" / "dir" / "x.out"
    line = one_line_error(run(*args, LENET, "-o", target), 1)
    assert f"the folder {target.parent} does not exist" in line
    assert list(tmp_path.iterdir()) == []


def test_render_c_creates_the_named_folder_itself(tmp_path):
    assert run("render", LENET, "--target", "c", "-o", tmp_path / "c").exit_code == 0
    assert (tmp_path / "c" / "model.c").is_file()


# ---- 2. build -o never deletes a user's files ---------------------------------------------------


def test_build_into_a_folder_of_user_files_is_refused_untouched(tmp_path):
    folder = tmp_path / "lenet5"  # the spec's name: build -o tmp_path writes here
    (folder / "c").mkdir(parents=True)
    (folder / "c" / "mine.c").write_text("int mine(void) { return 1; }\n")
    (folder / "model.py").write_text("# my own model\n")
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    line = one_line_error(run("build", LENET, "-o", tmp_path, "--epochs", "1"), 1)
    assert "is not a lenetc build folder" in line and "-o" in line and "nothing was changed" in line
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in folder.iterdir()) == ["c", "model.py"]


def test_rebuilding_a_build_folder_keeps_the_users_own_files(lenet_build, tmp_path):
    """The C export swaps c/ in: the user's c/mine.c and their compiled program survive it, and
    lenetc's own files are replaced."""
    import shutil

    from lenetc.artifacts import BuildDir
    from lenetc.check.shapes import check
    from lenetc.export.c_weights import export_c
    from lenetc.spec.load import load_spec

    out = BuildDir(tmp_path / "lenet5")
    shutil.copytree(lenet_build.root, out.root)
    (out.c_dir / "mine.c").write_text("int mine(void) { return 1; }\n")
    (out.c_dir / "model.c").write_text("/* stale */\n")
    (out.c_dir / "sub").mkdir()
    (out.c_dir / "sub" / "notes.txt").write_text("mine too")
    export_c(out, check(load_spec(out.spec)), None)
    assert (out.c_dir / "mine.c").read_text() == "int mine(void) { return 1; }\n"
    assert (out.c_dir / "sub" / "notes.txt").read_text() == "mine too"
    assert "stale" not in (out.c_dir / "model.c").read_text()
    assert not [p for p in out.root.iterdir() if p.name.startswith(".c.")]  # no temporaries


# ---- 6, 7. specs a build cannot take: refused at check time or before training, located -------


def test_a_spec_named_like_a_makefile_target_is_refused(tmp_path):
    spec = tmp_path / "clean.yaml"
    spec.write_text("name: clean\ninput: {shape: [4]}\nlayers: [{type: linear, out_features: 2}]\n")
    for command in ("check", "render"):
        result = run(command, spec)
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert result.output.startswith(f"{spec}:1: name 'clean' is a target of the C target's")
        assert "hint: rename it" in result.output


def test_a_build_of_a_spec_without_parameters_is_a_located_spec_error(tmp_path):
    spec = tmp_path / "relu.yaml"
    spec.write_text(
        "name: relu_only\ninput: {shape: [4]}\nlayers:\n  - {type: relu}\n"
        "train:\n  dataset: {name: synthetic}\n"
    )
    assert run("check", spec).exit_code == 0  # check, render and draw take it as it is
    result = run("build", spec, "-o", tmp_path / "out", "--epochs", "1")
    assert result.exit_code == 2, result.output
    first, hint = result.output.strip().splitlines()
    assert first == (
        f"{spec}:4: the network has no parameters to train (its layers: relu); a build trains "
        "weights"
    )
    assert hint.startswith("  hint: add a layer with weights")
    assert not (tmp_path / "out").exists()
