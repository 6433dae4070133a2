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


@pytest.mark.parametrize("name", ["Makefile", "GNUmakefile"])
def test_a_spec_whose_program_make_would_read_as_its_makefile_is_refused(tmp_path, name):
    spec = tmp_path / "m.yaml"
    spec.write_text(f"name: {name}\ninput: {{shape: [4]}}\nlayers: [{{type: relu}}]\n")
    result = run("check", spec)
    assert result.exit_code == 2
    assert f"name '{name}' would name the C target's program ./{name.lower()}" in result.output


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


# ---- 9, 10. predict and datasets: the training scale, special files, hostile labels -------------

ESCAPE_LABELS = ["\x1b[31mred", "bell\x07", "clear\x1b[2J", "rtl\u202eevil"]
NPZ_SPEC = """\
name: pixels
input: {shape: [1, 6, 6]}
layers:
  - {type: flatten}
  - {type: linear, out_features: 4}
train:
  dataset: {name: npz, path: data.npz, fit: none}
  epochs: 2
  seed: 0
"""


@pytest.fixture(scope="module")
def pixels_build(tmp_path_factory):
    """A small real build on 8-bit pixels (scaled by 1/255 in training) whose class labels carry
    escape sequences and a bidi override."""
    import numpy as np

    root = tmp_path_factory.mktemp("pixels")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    x = np.clip(rng.normal(40 + 50 * y[:, None, None, None], 20, (400, 1, 6, 6)), 0, 255)
    x[:, 0, 0, 0], x[:, 0, 5, 5] = 0, 255  # input_range [0, 1]: images map onto it unchanged
    np.savez(root / "data.npz", x=x.astype(np.uint8), y=y, labels=np.array(ESCAPE_LABELS))
    (root / "pixels.yaml").write_text(NPZ_SPEC)
    result = run(
        "build", root / "pixels.yaml", "-o", root / "build", "--runtime", "onnxruntime[cpu]"
    )
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\u202e" not in result.output
    return root / "build" / "pixels", x.astype(np.uint8)


def test_predict_scales_uint8_as_training_does(pixels_build, tmp_path):
    import json

    import numpy as np

    folder, x = pixels_build
    np.save(tmp_path / "raw.npy", x[:16])
    np.save(tmp_path / "scaled.npy", x[:16].astype(np.float64) / 255.0)
    raw = run("predict", folder, tmp_path / "raw.npy", "--json")
    scaled = run("predict", folder, tmp_path / "scaled.npy", "--json")
    assert raw.exit_code == 0 and scaled.exit_code == 0, raw.output + scaled.output
    a, b = json.loads(raw.output), json.loads(scaled.output)
    assert [r["label"] for r in a] == [r["label"] for r in b]
    for r, s in zip(a, b):
        assert r["probabilities"] == pytest.approx(s["probabilities"], abs=1e-6)
    assert len({r["index"] for r in a}) > 1  # the samples are told apart, not all one class


def test_labels_reach_the_terminal_with_escapes_shown_not_obeyed(pixels_build, tmp_path):
    import numpy as np

    folder, x = pixels_build
    np.save(tmp_path / "x.npy", x[:8])
    result = run("predict", folder, tmp_path / "x.npy")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "\u202e" not in result.output
    assert "\\x1b[31mred" in result.output and "rtl\\u202eevil" in result.output


def test_a_spec_file_name_with_escape_sequences_is_shown_not_obeyed(tmp_path):
    spec = tmp_path / "evil\x1b[2J\x1b]0;owned\x07.yaml"
    spec.write_text("name: evil\ninput: {shape: [4]}\nlayers: [{type: linear, out_features: 0}]\n")
    result = run("check", spec)
    assert result.exit_code == 2
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "evil\\x1b[2J\\x1b]0;owned\\x07.yaml:3: " in result.output


def test_the_report_quotes_the_folder_in_every_command_to_paste(pixels_build, tmp_path):
    import html
    import re
    import shlex
    import shutil

    folder = tmp_path / 'p $(touch x)"'
    shutil.copytree(pixels_build[0], folder)
    assert run("report", folder).exit_code == 0
    page = (folder / "report.html").read_text(encoding="utf-8")
    codes = [html.unescape(c) for c in re.findall(r"<pre><code>(.*?)</code></pre>", page, re.S)]
    commands = [c for c in codes if c.startswith("lenetc ")]
    assert len(commands) == 2
    for command in commands:
        words = shlex.split(command)
        assert words[2] == str(folder), command
    assert f"lenetc report {shlex.quote(str(folder))}" in html.unescape(page)
    python = next(c for c in codes if c.startswith("import json"))
    compile(python, "embed.py", "exec")  # the folder is a string literal, nothing more


def test_predict_on_a_device_or_a_fifo_says_what_it_is(pixels_build, tmp_path):
    folder = pixels_build[0]
    line = one_line_error(run("predict", folder, "/dev/zero"), 2)
    assert line == "/dev/zero: is a character device, not a regular file; give a file (or a " + (
        "copy of its data)"
    )
    fifo = tmp_path / "in.npy"
    os.mkfifo(fifo)
    assert "is a FIFO (named pipe), not a regular file" in one_line_error(
        run("predict", folder, fifo), 2
    )
    assert one_line_error(run("predict", folder, tmp_path / "none.npy"), 2).endswith("no such file")


def _build_in_subprocess(spec: Path, out: Path):
    """A real `lenetc build` in its own process, bounded: a hang is a failure, not a stuck run."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "lenetc", "build", str(spec), "-o", str(out), "--epochs", "1"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "default"},
    )  # fmt: skip


def test_a_fifo_as_a_dataset_file_is_refused_at_once(tmp_path):
    import numpy as np

    os.mkfifo(tmp_path / "x.npy")  # no writer: opening it would block forever
    np.save(tmp_path / "y.npy", np.zeros(8, np.int64))
    spec = tmp_path / "fifo.yaml"
    spec.write_text(
        "name: fifo\ninput: {shape: [4]}\nlayers: [{type: linear, out_features: 2}]\n"
        "train:\n  dataset: {name: npy, x: x.npy, y: y.npy}\n"
    )
    result = _build_in_subprocess(spec, tmp_path / "out")
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == (
        f"error: dataset npy x {tmp_path / 'x.npy'}: is a FIFO (named pipe), not a regular file; "
        "give a file (or a copy of its data)"
    )


def test_a_value_beyond_float32_in_float64_data_is_one_located_line(tmp_path):
    import numpy as np

    x = np.zeros((16, 4))
    x[5, 2] = 1e300
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(16) % 2)
    spec = tmp_path / "big.yaml"
    spec.write_text(
        "name: big\ninput: {shape: [4]}\nlayers: [{type: linear, out_features: 2}]\n"
        "train:\n  dataset: {name: npy, x: x.npy, y: y.npy}\n"
    )
    result = _build_in_subprocess(spec, tmp_path / "out")
    assert result.returncode == 1, result.stderr
    assert "Warning" not in result.stderr and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "x.npy" in line and "sample 5" in line and "[2]" in line, line


# ---- 12. PNG and JPEG through Pillow, read as training reads pixels ----------------------------


def test_a_png_gives_what_the_same_uint8_array_gives(pixels_build, tmp_path):
    import json

    import numpy as np
    from PIL import Image  # the dev extra installs lenetc[images]

    folder, x = pixels_build
    sample = x[3]
    Image.fromarray(sample[0], mode="L").save(tmp_path / "digit.png")
    np.save(tmp_path / "digit.npy", sample)
    rgb = np.repeat(sample[0][:, :, None], 3, axis=2)  # a colour file of the same grey levels
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "colour.png")
    from_png = json.loads(run("predict", folder, tmp_path / "digit.png", "--json").output)
    from_colour = json.loads(run("predict", folder, tmp_path / "colour.png", "--json").output)
    from_npy = json.loads(run("predict", folder, tmp_path / "digit.npy", "--json").output)
    for got in (from_png, from_colour):
        assert got[0]["label"] == from_npy[0]["label"]
        assert got[0]["probabilities"] == pytest.approx(from_npy[0]["probabilities"], abs=1e-6)
    Image.fromarray(sample[0], mode="L").save(tmp_path / "digit.jpg", quality=100)
    assert run("predict", folder, tmp_path / "digit.jpg").exit_code == 0


def test_a_png_of_another_size_or_not_an_image_is_one_line(pixels_build, tmp_path):
    import numpy as np
    from PIL import Image

    folder = pixels_build[0]
    Image.fromarray(np.zeros((28, 20), np.uint8)).save(tmp_path / "big.png")
    line = one_line_error(run("predict", folder, tmp_path / "big.png"), 2)
    assert "the image is 20 x 28 pixels; the model takes 6 x 6 (width x height)" in line
    (tmp_path / "fake.png").write_bytes(b"\x89PNG not really")
    assert "not a readable image" in one_line_error(
        run("predict", folder, tmp_path / "fake.png"), 2
    )


def test_without_pillow_a_png_says_how_to_install_or_convert(pixels_build, tmp_path, monkeypatch):
    import sys

    (tmp_path / "digit.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    monkeypatch.setitem(sys.modules, "PIL", None)  # import PIL raises ImportError
    line = one_line_error(run("predict", pixels_build[0], tmp_path / "digit.png"), 2)
    assert "needs Pillow: pip install 'lenetc[images]'" in line and ".pgm or .npy" in line
