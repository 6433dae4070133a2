"""Integrity: the proof cannot be fooled, and a user's mistake is never an "internal error".

Fault injection over copies of the session's LeNet build (conftest's `lenet_build`, built once):
every file the manifest lists (and the manifest) deleted, emptied, truncated, a byte flipped; each
ONNX metadata key edited; spec.yaml edited. Each case must end in its documented exit code with
one `error:` line naming the file: never 0, never "internal error", never a traceback. "Resealed"
cases rewrite manifest.json after the damage (a forger who recomputes the hashes): the checks
between the files (spec hash, model.py re-rendered, metadata against the spec and train.json,
every artifact against weights.pt: tests/test_forgery.py) must still refuse. Then: the folder
lock, interrupted runs' leftovers, read-only folders, and the other mistakes the issue lists
(predict's inputs, render -o, a closed stdout, non-finite data and losses, resume).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from lenetc.artifacts import BuildDir
from lenetc.build import BuildOptions, build
from lenetc.cli import main
from lenetc.errors import EXIT_INTEGRITY, EXIT_PARITY, EXIT_RUNTIME, EXIT_SPEC
from lenetc.export import onnx_meta
from lenetc.export.manifest import write_manifest
from lenetc.lock import HOLDER, FolderBusy, folder_lock
from lenetc.train.loop import TrainingInterrupted
from lenetc.verify.integrity import check_integrity

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error_line(result, code: int, *names: str) -> str:
    """The result exits `code` with exactly one line on stderr naming each of `names` (`error: `
    first, but for exit 2, whose lines start with the file, as a spec error's do). A parity
    failure says one line per failing runtime: where several runtimes read the broken file
    (TorchScript in Python and in libtorch), each of its lines names the file."""
    out = result.output
    assert result.exit_code == code, out
    assert "internal error" not in out and "Traceback" not in out, out
    lines = result.stderr.strip().splitlines()
    assert code == EXIT_SPEC or lines[0].startswith("error: "), out
    assert len(lines) == 1 or code == EXIT_PARITY, out
    for line in lines:
        for name in names:
            assert name in line, (name, line)
    return lines[0]


@pytest.fixture
def copy(lenet_build: BuildDir, tmp_path) -> BuildDir:
    return BuildDir(shutil.copytree(lenet_build.root, tmp_path / "lenet5"))


# --- fault injection --------------------------------------------------------------------------


def delete(path: Path) -> None:
    path.unlink()


def empty(path: Path) -> None:
    path.write_bytes(b"")


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


FAULTS = (delete, empty, truncate, flip)


def test_every_fault_in_every_listed_file_and_the_manifest_exits_4_naming_it(copy):
    names = [*json.loads(copy.manifest.read_text())["artifacts"], "manifest.json"]
    assert len(names) >= 15 and {"spec.yaml", "verify.json", "checkpoint.pt"} <= set(names)
    failures = []
    for name in names:
        path = copy.root / name
        original = path.read_bytes()
        for fault in FAULTS:
            fault(path)
            result = invoke("verify", copy.root)
            path.write_bytes(original)
            try:
                line = one_error_line(result, EXIT_INTEGRITY, name)
                assert result.stdout == "", "no parity table for a tampered folder"
            except AssertionError as exc:
                failures.append(f"{fault.__name__} {name}: {exc}")
            else:
                assert "changed since the build" in line or "manifest.json" in line
    assert not failures, "\n".join(failures)


def _edit_last_alnum(value: str) -> str:
    """Change one character: the last letter or digit (0.305 -> 0.306, input -> inpuu)."""
    i = max(i for i, c in enumerate(value) if c.isalnum())
    c = value[i]
    new = str((int(c) + 1) % 10) if c.isdigit() else ("a" if c != "a" else "b")
    return value[:i] + new + value[i + 1 :]


def _set_metadata(onnx_path: Path, change) -> None:
    model = onnx.load(str(onnx_path))
    props = {p.key: p.value for p in model.metadata_props}
    before = dict(props)
    change(props)
    assert props != before, "the edit changed nothing"
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(onnx_path))


@pytest.mark.parametrize("resealed", [False, True], ids=["as-is", "resealed"])
def test_each_onnx_metadata_key_edited_exits_4(copy, resealed):
    original = copy.onnx.read_bytes()
    failures = []
    edits = {
        key: (lambda p, k=key: p.update({k: _edit_last_alnum(p[k])})) for key in onnx_meta.KEYS
    }
    edits["(the issue's) normalization_mean 0.305 -> 0.905"] = lambda p: p.update(
        normalization_mean=p["normalization_mean"].replace("[0.3", "[0.9")
    )
    edits["(removed) class_labels"] = lambda p: p.pop("class_labels")
    edits["(added) backdoor"] = lambda p: p.update(backdoor="1")
    for what, change in edits.items():
        _set_metadata(copy.onnx, change)
        if resealed:
            write_manifest(copy)
        result = invoke("verify", copy.root)
        copy.onnx.write_bytes(original)
        try:
            line = one_error_line(result, EXIT_INTEGRITY, "model.onnx")
            key = what.split()[-1] if what.startswith("(") else what
            if resealed and key not in ("spec_sha256", "0.905"):
                assert f"metadata {key}" in line or f"no {key}" in line or repr(key) in line
        except AssertionError as exc:
            failures.append(f"{what}: {exc}")
    write_manifest(copy)
    assert not failures, "\n".join(failures)
    check_integrity(copy.root)  # the original back, resealed: intact


SPEC_EDITS = {
    "fc1 120 -> 100": ("out_features: 120}", "out_features: 100}"),
    "conv1 6 -> 8": ("out_channels: 6,", "out_channels: 8,"),
    "a kernel check refuses": (
        "out_channels: 6, kernel_size: 5}",
        "out_channels: 6, kernel_size: 50}",
    ),
    "one byte of a comment": ("# LeNet-5", "# LeNet-6"),
}


@pytest.mark.parametrize("edit", SPEC_EDITS, ids=list(SPEC_EDITS))
def test_an_edited_spec_exits_4_even_with_the_manifest_resealed(copy, edit):
    old, new = SPEC_EDITS[edit]
    text = copy.spec.read_text()
    assert old in text
    copy.spec.write_text(text.replace(old, new, 1))
    one_error_line(invoke("verify", copy.root), EXIT_INTEGRITY, "spec.yaml", "manifest.json")
    write_manifest(copy)
    line = one_error_line(invoke("verify", copy.root), EXIT_INTEGRITY, "spec.yaml")
    if edit == "a kernel check refuses":
        assert "no longer passes lenetc check" in line and ":8: layer conv1 (conv2d)" in line
    else:
        assert "not the spec model.onnx was exported from" in line


def test_predict_refuses_a_model_onnx_its_manifest_does_not_list(copy, tmp_path):
    """The issue's case: normalization_mean 0.305 -> 0.905 made predict wrong, with exit 0."""
    np.save(tmp_path / "one.npy", np.zeros((1, 32, 32), np.float32))
    assert invoke("predict", copy.root, tmp_path / "one.npy").exit_code == 0
    _set_metadata(copy.onnx, lambda p: p.update(normalization_mean="[0.905]"))
    line = one_error_line(invoke("predict", copy.root, tmp_path / "one.npy"), EXIT_INTEGRITY)
    assert line.startswith(f"error: {copy.onnx}: ") and "changed since the build" in line


def test_model_py_edited_and_resealed_exits_4_naming_the_line(copy):
    source = copy.model_py.read_text()
    assert "5 * 5, 120)" in source
    copy.model_py.write_text(source.replace("5 * 5, 120)", "5 * 5, 100)", 1))
    write_manifest(copy)
    line = one_error_line(invoke("verify", copy.root), EXIT_INTEGRITY, "model.py")
    assert "is not what spec.yaml renders to" in line and "nn.Linear(16 * 5 * 5, 120)" in line


BROKEN_AND_RESEALED = {  # what a broken file gives once its hash is in the manifest
    "model.onnx": (EXIT_INTEGRITY, "model.onnx"),
    "train.json": (EXIT_INTEGRITY, "train.json"),
    "weights.pt": (EXIT_INTEGRITY, "weights.pt"),
    "heldout.npz": (EXIT_INTEGRITY, "heldout.npz"),
    "model.torchscript.pt": (EXIT_INTEGRITY, "model.torchscript.pt: cannot be loaded"),
}


@pytest.mark.parametrize("name", BROKEN_AND_RESEALED)
def test_a_broken_file_resealed_is_never_0_nor_internal_error(copy, name):
    code, shown = BROKEN_AND_RESEALED[name]
    path = copy.root / name
    original = path.read_bytes()
    for fault in (empty, truncate):
        fault(path)
        write_manifest(copy)
        one_error_line(invoke("verify", copy.root), code, shown)
        path.write_bytes(original)


@pytest.mark.slow
def test_a_truncated_pt2_resealed_exits_4_without_torchs_logged_traceback(copy):
    """torch.export.load logs a 12-line traceback before it raises; the user sees one line."""
    truncate(copy.pt2)
    write_manifest(copy)
    proc = subprocess.run(
        [sys.executable, "-m", "lenetc", "verify", str(copy.root)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == EXIT_INTEGRITY, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: {copy.pt2}: cannot be loaded to compare with weights.pt "
        "(BadZipFile: File is not a zip file)"
    ]
    assert proc.stdout == "", "no parity table for a tampered folder"


def test_unfinished_and_non_build_folders_exit_1_naming_the_file(copy, tmp_path):
    copy.pt2.unlink()
    copy.manifest.unlink()
    line = one_error_line(invoke("verify", copy.root), EXIT_RUNTIME, "model.pt2")
    assert "is an unfinished build: no manifest.json" in line
    line = one_error_line(invoke("verify", tmp_path), EXIT_RUNTIME, str(copy.root))
    assert line == (
        f"error: {tmp_path} is not a build folder, but holds 1: {copy.root}; "
        f"run lenetc verify {copy.root}"
    )


# --- an intact folder, leftovers, read-only ----------------------------------------------------


@pytest.mark.slow
def test_intact_folder_verifies_cleans_leftovers_and_then_verifies_read_only(copy):
    leftovers = [".model.onnx.k2j4x_9a.tmp", ".lenetc.lock.4242"]
    for name in leftovers:
        (copy.root / name).write_bytes(b"half-written")
    (copy.root / ".test_data_set_0.abcd1234.tmp.old").mkdir()
    (copy.root / ".keep").write_text("a user's own hidden file")
    result = invoke("verify", copy.root)
    assert result.exit_code == 0, result.output
    assert "note: removed what an interrupted run left: " in result.stderr
    assert sorted(p.name for p in copy.root.glob(".*")) == [".keep"]
    manifest = check_integrity(copy.root)  # verify.json was rewritten and re-hashed: consistent
    assert manifest["artifacts"]["verify.json"]["bytes"] == copy.verify_json.stat().st_size

    before = {p.name: p.read_bytes() for p in copy.root.iterdir() if p.is_file()}
    with read_only(copy.root):
        result = invoke("verify", copy.root)
    assert result.exit_code == 0, result.output
    assert "verify: PASS" in result.stdout
    assert f"note: {copy.root} is read-only: verify.json was not rewritten" in result.stderr
    assert {p.name: p.read_bytes() for p in copy.root.iterdir() if p.is_file()} == before


class read_only:
    """Make a folder read-only for this process, root included (chmod alone does not stop root:
    then the immutable attribute, which does)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.chattr = os.geteuid() == 0

    def __enter__(self) -> None:
        self.folder.chmod(0o555)
        if self.chattr:
            subprocess.run(["chattr", "+i", str(self.folder)], check=True, capture_output=True)
        assert not os.access(self.folder, os.W_OK), "could not make the folder read-only"

    def __exit__(self, *exc) -> None:
        if self.chattr:
            subprocess.run(["chattr", "-i", str(self.folder)], check=True, capture_output=True)
        self.folder.chmod(0o755)


# --- one build at a time ---------------------------------------------------------------------

HOLD = """
import sys, time
from pathlib import Path
from lenetc.lock import folder_lock
with folder_lock(Path(sys.argv[1]), "lenetc build held.yaml"):
    print("locked", flush=True)
    time.sleep(300)
"""


def test_a_held_folder_refuses_naming_the_holder_and_a_killed_holder_leaves_no_stale_lock(copy):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(copy.root)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        line = one_error_line(invoke("verify", copy.root), EXIT_RUNTIME, str(copy.root))
        assert (
            f"is in use by another lenetc command: `lenetc build held.yaml` (pid {proc.pid},"
            in (line)
        )
        with pytest.raises(FolderBusy):
            with folder_lock(copy.root, "a second holder"):
                pass
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert json.loads((copy.root / HOLDER).read_text())["pid"] == proc.pid  # its note remains
    with folder_lock(copy.root, "the next command"):  # the kernel released the lock itself
        assert json.loads((copy.root / HOLDER).read_text())["pid"] == os.getpid()
    assert not (copy.root / HOLDER).exists()


@pytest.mark.slow
def test_two_builds_into_one_folder_one_refuses_and_a_closed_stdout_stops_neither(tmp_path):
    """`lenetc build ... --seed 1 | head -1` and, meanwhile, a second build with --seed 2."""
    folder = tmp_path / "lenet5"
    folder.mkdir()
    (folder / ".model.onnx.zz9x8w7v.tmp").write_bytes(b"an interrupted run's half model")
    spec = str(SPECS / "lenet5.yaml")
    first = subprocess.Popen(
        [sys.executable, "-m", "lenetc", "build", spec, "-o", str(tmp_path), "--epochs", "1"]
        + ["--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.stdout.readline().startswith("removed what an interrupted run left: ")
        first.stdout.close()  # what `head -1` does after its line
        second = invoke("build", spec, "-o", tmp_path, "--epochs", "1", "--seed", "2")
        line = one_error_line(second, EXIT_RUNTIME, str(folder), f"(pid {first.pid},")
        assert f"`lenetc build {spec} -o {tmp_path} --epochs 1 --seed 1`" in line
        err = first.stderr.read()
    finally:
        first.wait(timeout=600)
    assert first.returncode == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert not list(folder.glob(".model.onnx.*"))
    assert json.loads((folder / "train.json").read_text())["seed"] == 1
    check_integrity(folder)  # one build's files only; its exit 0 says its parity passed


# --- predict's inputs, render -o ----------------------------------------------------------------


def _pgm(path: Path, header: bytes, pixels: bytes = b"") -> Path:
    path.write_bytes(header + pixels)
    return path


def test_predict_refuses_bad_inputs_with_exit_2_in_one_line(lenet_build, tmp_path):
    sample = np.zeros((1, 32, 32), np.float32)
    cases = {}
    (tmp_path / "empty.npy").write_bytes(b"")
    cases["empty.npy"] = "not a readable .npy file (it is empty)"
    for name, value in (("nan", np.nan), ("inf", np.inf), ("huge", 1e300)):
        bad = np.repeat(sample[None].astype(np.float64), 3, axis=0)
        bad[2, 0, 4, 5] = value
        np.save(tmp_path / f"{name}.npy", bad)
        cases[f"{name}.npy"] = "sample 2 is not finite"
    cases["huge.npy"] += ", beyond float32 once normalized (the first bad value is at [0, 4, 5])"
    pgms = {
        "wide.pgm": (b"P5\n99999999999999999999 8\n255\n", "not a positive whole number"),
        "negative.pgm": (b"P5\n-32 32\n255\n", "Netpbm width is '-32'"),
        "maxval0.pgm": (b"P2\n32 32\n0\n", "Netpbm maxval is 0; it must be 1 to 65535"),
        "maxval70000.pgm": (b"P5\n32 32\n70000\n", "Netpbm maxval is 70000"),
        "absurd.pgm": (b"P5\n65536 65536\n255\n", "says 65536 x 65536 pixels, which the file's"),
        "text.pgm": (b"P2\n32 abc\n255\n", "Netpbm height is 'abc'"),
    }
    for name, (header, message) in pgms.items():
        _pgm(tmp_path / name, header, bytes(16))
        cases[name] = message
    for name, message in cases.items():
        result = invoke("predict", lenet_build.root, tmp_path / name)
        one_error_line(result, EXIT_SPEC, name, message)


def test_predict_json_is_strict_json_and_honors_top(lenet_build, tmp_path):
    x = np.load(lenet_build.io_npz)["input"][:3]
    np.save(tmp_path / "three.npy", x)
    result = invoke(
        "predict", lenet_build.root, tmp_path / "three.npy", "--normalized", "--json", "--top", "3"
    )
    assert result.exit_code == 0, result.output

    def no_constants(name):
        raise AssertionError(f"{name} is not JSON")

    rows = json.loads(result.stdout, parse_constant=no_constants)
    assert len(rows) == 3
    for row in rows:
        probs = list(row["probabilities"].values())
        assert len(probs) == 3 and probs == sorted(probs, reverse=True)
        assert next(iter(row["probabilities"])) == row["label"]


def test_render_into_a_missing_a_non_folder_or_a_read_only_folder(tmp_path):
    spec = SPECS / "lenet5.yaml"
    target = tmp_path / "new" / "sub" / "model.py"  # issue 23: no folders created unasked
    line = one_error_line(invoke("render", spec, "-o", target), 1)
    assert line.startswith(f"error: cannot write {target}: the folder {target.parent} does not ")
    assert not (tmp_path / "new").exists()
    line = one_error_line(invoke("render", spec, "-o", f"{tmp_path / 'dir'}/"), EXIT_SPEC)
    assert (
        line == f"-o {tmp_path / 'dir'}/ names a folder; name the file: {tmp_path / 'dir'}/model.py"
    )
    assert not (tmp_path / "dir").exists()
    (tmp_path / "afile").write_text("")
    line = one_error_line(invoke("render", spec, "-o", tmp_path / "afile" / "model.py"), 1)
    assert line.startswith(
        f"error: cannot write {tmp_path / 'afile' / 'model.py'}: the folder {tmp_path / 'afile'} "
        "is not a folder"
    )
    (tmp_path / "ro").mkdir()
    with read_only(tmp_path / "ro"):
        line = one_error_line(invoke("render", spec, "-o", tmp_path / "ro" / "model.py"), 1)
    assert f"cannot write {tmp_path / 'ro' / 'model.py'}: permission denied" in line or (
        "Operation not permitted" in line
    )


# --- non-finite data and losses, resume ---------------------------------------------------------

TINY = """\
name: tiny
input: {{shape: [8]}}
layers:
  - {{type: linear, out_features: 16}}
  - {{type: relu}}
  - {{type: linear, out_features: 3}}
train:
  dataset: {dataset}
  epochs: 4
  batch_size: 16
  optimizer: {{type: sgd, lr: 0.01, momentum: 0.9}}
  seed: 5
verify: {{providers: [cpu], batch_sizes: [2]}}
"""


@pytest.mark.parametrize(
    "key, value, shown",
    [
        ("x", np.nan, "holds nan"),
        ("x_test", -np.inf, "holds -inf"),
        ("x", 1e300, "holds 1e+300, beyond float32"),
    ],
)
def test_a_dataset_with_non_finite_samples_is_refused_before_training(tmp_path, key, value, shown):
    rng = np.random.default_rng(0)
    arrays = {
        "x": rng.normal(size=(60, 8)),
        "y": rng.integers(0, 3, 60),
        "x_test": rng.normal(size=(20, 8)),
        "y_test": rng.integers(0, 3, 20),
    }
    arrays[key][7, 3] = value
    np.savez(tmp_path / "data.npz", **arrays)
    (tmp_path / "tiny.yaml").write_text(TINY.format(dataset="{name: npz, path: data.npz}"))
    result = invoke("build", tmp_path / "tiny.yaml", "-o", tmp_path / "b")
    line = one_error_line(result, EXIT_RUNTIME, f"data.npz: {key}[7] {shown} at [3]")
    assert "(1 of " in line
    assert not (tmp_path / "b" / "tiny" / "metrics.jsonl").exists()


def test_a_non_finite_loss_stops_training_naming_epoch_and_batch(tmp_path, monkeypatch):
    import lenetc.train.loop as loop

    real, calls = loop.loss_fn, []

    def nan_from_the_third_batch_of_epoch_2(name, out, y):
        calls.append(1)
        value = real(name, out, y)
        return value * float("nan") if len(calls) >= 11 + 1 + 3 else value  # 11 batches, 1 val

    monkeypatch.setattr(loop, "loss_fn", nan_from_the_third_batch_of_epoch_2)
    (tmp_path / "tiny.yaml").write_text(TINY.format(dataset="{name: synthetic, samples: 240}"))
    line = one_error_line(invoke("build", tmp_path / "tiny.yaml", "-o", tmp_path), EXIT_RUNTIME)
    checkpoint = tmp_path / "tiny" / "checkpoint.pt"
    assert line == (
        f"error: training diverged: the loss is nan at epoch 2, batch 3 of 11 (lr 0.01); "
        f"{checkpoint} (the last good state) is kept; lower the learning rate (--lr), or check "
        "the data for extreme values"
    )
    import torch

    assert torch.load(checkpoint, weights_only=True)["loop"]["epoch"] == 1
    assert len((tmp_path / "tiny" / "metrics.jsonl").read_text().splitlines()) == 1


def test_lr_10_diverges_in_one_line_and_leaves_an_unfinished_build(copy):
    """Rebuilt over a finished build: the old artifacts stay, but the folder says unfinished."""
    onnx_before = copy.onnx.read_bytes()
    out = copy.root.parent
    result = invoke("build", SPECS / "lenet5.yaml", "-o", out, "--lr", "10", "--epochs", "1")
    line = one_error_line(result, EXIT_RUNTIME, "training diverged: the loss is nan at epoch 1")
    assert "(lr 10); no checkpoint was written; lower the learning rate" in line
    assert copy.onnx.read_bytes() == onnx_before  # never reached the export
    line = one_error_line(invoke("verify", copy.root), EXIT_RUNTIME, "unfinished build")
    assert "no manifest.json (lenetc build writes it last) and no verify.json" in line


def test_the_printed_resume_command_resumes_and_a_mismatch_names_what_differs(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY.format(dataset="{name: synthetic, samples: 240}"))
    polls = iter(range(10_000))
    opts = BuildOptions(out=tmp_path, epochs=6, lr=0.02, quiet=True, stop=lambda: next(polls) > 20)
    with pytest.raises(TrainingInterrupted) as exc:
        build(spec, opts)
    printed = exc.value.resume_command
    assert printed == f"lenetc build {spec} -o {tmp_path} --epochs 6 --lr 0.02 --resume"
    args = shlex.split(printed)[1:]
    other = [{"6": "2", "0.02": "0.05"}.get(a, a) for a in args]
    line = one_error_line(invoke(*other), EXIT_RUNTIME, "checkpoint.pt was written for a different")
    assert "epochs 6 in the checkpoint, 2 now" in line
    assert "optimizer.lr 0.02 in the checkpoint, 0.05 now" in line
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "tiny" / "metrics.jsonl").read_text().splitlines()) == 6


def test_library_logs_keep_their_line_and_lose_their_traceback():
    import logging

    from lenetc.expected_warnings import library_logs_in_one_line

    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep()
    for name in ("torch.export", "lenetc.probe"):
        logging.getLogger(name).addHandler(handler)
    try:
        with library_logs_in_one_line():
            for name in ("torch.export", "lenetc.probe"):
                try:
                    raise RuntimeError("boom")
                except RuntimeError:
                    logging.getLogger(name).warning("Ran into an error", exc_info=True)
    finally:
        for name in ("torch.export", "lenetc.probe"):
            logging.getLogger(name).removeHandler(handler)
    assert [(r.name, r.getMessage(), r.exc_info is None) for r in seen] == [
        ("torch.export", "Ran into an error", True),
        ("lenetc.probe", "Ran into an error", False),  # not a library's: left as it was
    ]
