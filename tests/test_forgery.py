"""Forgery: a folder whose manifest was re-sealed after an edit must still fail, exit 4.

Anyone can re-seal manifest.json (re-hash each file, recompute the digest): the format allows it.
Each test forges a copy of the session's LeNet build (conftest's `lenet_build`) as issue 23 did
(a weight nudged by 1e-3, train.json's seed edited, io.npz emptied, checkpoint.pt replaced, a
pickled or broken weights.pt), re-seals it, and asserts exit 4 with one `error:` line naming the
file, no traceback, and never torch's advice to unpickle the file. Then predict, bench and
report on a forged folder, and the signature (`build --sign`, `verify --key`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import numpy_helper

from lenetc.artifacts import BuildDir
from lenetc.cli import main
from lenetc.errors import EXIT_INTEGRITY, EXIT_OK
from lenetc.export.manifest import write_manifest

ADVICE = "weights_only"  # torch's advice names the flag: "re-running torch.load with weights_only"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def refused(result, *names: str) -> str:
    """Exit 4, one `error:` line naming each of `names`, no traceback, no advice."""
    out = result.output
    assert result.exit_code == EXIT_INTEGRITY, out
    assert "Traceback" not in out and "internal error" not in out, out
    assert ADVICE + "` set to `False" not in out and "weights_only=False" not in out, out
    assert "will likely succeed" not in out, out
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


@pytest.fixture
def copy(lenet_build: BuildDir, tmp_path) -> BuildDir:
    return BuildDir(shutil.copytree(lenet_build.root, tmp_path / "lenet5"))


def nudge_weights(out: BuildDir, key: str = "conv2.weight", by: float = 1e-3) -> None:
    state = torch.load(out.weights, weights_only=True)
    state[key].view(-1)[0] += by
    torch.save(state, out.weights)


def test_the_intact_folder_passes_the_checks(copy):
    from lenetc.verify.agreement import check_build

    check_build(copy.root)  # every check below starts from a folder that passes


def test_a_weight_nudged_by_1e_3_and_resealed_exits_4_naming_the_parameter(copy):
    """The issue's forgery: verify passed it with '(within tolerance)' notes."""
    nudge_weights(copy)
    write_manifest(copy)
    result = invoke("verify", copy.root)
    line = refused(result, "conv2.weight", "weights.pt")
    assert "within tolerance" not in result.output and result.stdout == ""
    assert line.startswith(f"error: {copy.weights}: conv2.weight differs from every other file's")
    assert "weights.pt was changed after the build" in line


def test_one_artifact_nudged_alone_and_resealed_names_that_artifact(copy):
    model = onnx.load(str(copy.onnx))
    tensor = next(t for t in model.graph.initializer if t.name == "fc1.bias")
    value = numpy_helper.to_array(tensor).copy()
    value[3] = np.nextafter(value[3], np.float32(1))  # one ulp: still caught, bit for bit
    tensor.CopyFrom(numpy_helper.from_array(value, "fc1.bias"))
    onnx.save(model, str(copy.onnx))
    write_manifest(copy)
    line = refused(invoke("verify", copy.root), "model.onnx", "fc1.bias")
    assert line.startswith(f"error: {copy.onnx}: parameter fc1.bias is not weights.pt's")


def test_the_c_weights_file_nudged_and_resealed_exits_4(copy):
    path = copy.c_dir / "model_weights.h"
    text = path.read_text()
    head, _, tail = text.partition("fc3_bias")
    start = tail.index("{") + 1
    first = tail[start:].split(",")[0]
    forged = float.fromhex(first.strip().rstrip("f")) + 1e-3
    tail = tail[:start] + " " + forged.hex() + "f" + tail[start + len(first) :]
    path.write_text(head + "fc3_bias" + tail)
    write_manifest(copy)
    refused(invoke("verify", copy.root), "model_weights.h", "fc3.bias")


def test_train_json_seed_edited_and_resealed_exits_4(copy):
    train = json.loads(copy.train_json.read_text())
    train["seed"] = 1
    copy.train_json.write_text(json.dumps(train, indent=2))
    write_manifest(copy)
    line = refused(invoke("verify", copy.root), "train.json")
    assert "seed is 1, but checkpoint.pt's run recorded 0" in line


TRAIN_EDITS = {
    "epochs 3": lambda t: t.update(epochs=3),
    "epochs '2'": lambda t: t.update(epochs="2"),
    "seed 'x'": lambda t: t.update(seed="x"),
    "no samples": lambda t: t.pop("samples"),
    "stopped early": lambda t: t.update(stopped_early=True),
    "train_seconds": lambda t: t.update(train_seconds=1.0),
}


@pytest.mark.parametrize("edit", TRAIN_EDITS)
def test_train_json_fields_edited_and_resealed_exit_4(copy, edit):
    train = json.loads(copy.train_json.read_text())
    TRAIN_EDITS[edit](train)
    copy.train_json.write_text(json.dumps(train, indent=2))
    write_manifest(copy)
    refused(invoke("verify", copy.root), "train.json")


def test_metrics_edited_and_resealed_exits_4(copy):
    lines = copy.metrics.read_text().splitlines()
    record = json.loads(lines[-1])
    record["val_accuracy"] = 0.99
    lines[-1] = json.dumps(record)
    copy.metrics.write_text("\n".join(lines) + "\n")
    write_manifest(copy)
    refused(invoke("verify", copy.root), "metrics.jsonl", "epoch 2")


@pytest.mark.parametrize("how", ["empty file", "no rows", "outputs edited", "missing key"])
def test_io_npz_emptied_or_edited_and_resealed_exits_4(copy, how):
    held = dict(np.load(copy.io_npz))
    if how == "empty file":
        copy.io_npz.write_bytes(b"")
    else:
        if how == "no rows":
            held = {k: v[:0] for k, v in held.items()}
        elif how == "outputs edited":
            held["output"] = held["output"].copy()
            held["output"][0, 0] += 1e-3
        else:
            del held["label"]
        with open(copy.io_npz, "wb") as handle:
            np.savez(handle, **held)
    write_manifest(copy)
    line = refused(invoke("verify", copy.root), "io.npz")
    if how == "outputs edited":
        assert "is not what model.py with weights.pt computes" in line


def test_test_data_set_0_edited_and_resealed_exits_4(copy):
    path = copy.test_data / "output_0.pb"
    tensor = onnx.TensorProto()
    tensor.ParseFromString(path.read_bytes())
    value = numpy_helper.to_array(tensor).copy()
    value[0, 0] += 1e-3
    path.write_bytes(numpy_helper.from_array(value, tensor.name).SerializeToString())
    write_manifest(copy)
    refused(invoke("verify", copy.root), "output_0.pb", "io.npz")


@pytest.mark.parametrize("how", ["other weights", "deleted", "pickled object"])
def test_checkpoint_replaced_and_resealed_exits_4(copy, how, tmp_path):
    marker = tmp_path / "ran"
    if how == "other weights":
        state = torch.load(copy.checkpoint, weights_only=True)
        state["model"]["fc2.weight"].view(-1)[5] -= 1e-3
        torch.save(state, copy.checkpoint)
    elif how == "deleted":
        copy.checkpoint.unlink()
    else:
        torch.save(_Evil(marker), copy.checkpoint)
    write_manifest(copy)
    line = refused(invoke("verify", copy.root), "checkpoint.pt")
    assert not marker.exists(), "a pickle's code ran"
    if how == "other weights":
        assert "fc2.weight" in line


class _Evil:
    """A pickle that would create a file when unpickled unsafely."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("command", ["verify", "bench"])
@pytest.mark.parametrize("how", ["pickled object", "truncated", "not a state_dict"])
def test_a_pickled_or_broken_weights_pt_is_one_clean_line(copy, command, how, tmp_path):
    """Issue 23 item 8: bench said "internal error", verify repeated torch's advice."""
    marker = tmp_path / "ran"
    if how == "pickled object":
        torch.save({"conv1.weight": _Evil(marker)}, copy.weights)
    elif how == "truncated":
        copy.weights.write_bytes(copy.weights.read_bytes()[:200])
    else:
        torch.save([torch.zeros(3)], copy.weights)
    write_manifest(copy)
    line = refused(invoke(command, copy.root), "weights.pt")
    assert not marker.exists(), "a pickle's code ran"
    if how == "pickled object":
        assert "holds pickled Python objects" in line and "never runs their code" in line


def test_predict_bench_and_report_refuse_a_forged_folder(copy, tmp_path):
    """Issue 23 item 4: none of them checked; report showed the old PASS."""
    sample = tmp_path / "one.npy"
    np.save(sample, np.zeros((1, 32, 32), np.float32))
    assert invoke("predict", copy.root, sample).exit_code == EXIT_OK
    report = invoke("report", copy.root)
    assert report.exit_code == EXIT_OK and copy.report.is_file(), report.output
    nudge_weights(copy, "fc3.bias")
    write_manifest(copy)
    refused(invoke("predict", copy.root, sample), "fc3.bias")
    refused(invoke("bench", copy.root, "--repeats", "3"), "fc3.bias")
    refused(invoke("report", copy.root), "fc3.bias")
    assert not copy.report.exists(), "the old report.html (PASS) outlived the forgery"
    assert not (copy.root / "bench.json").exists()


def test_predict_refuses_an_edited_model_onnx_with_the_manifest_deleted(copy, tmp_path):
    """The issue's predict case: normalization_mean edited, manifest.json deleted: exit 0."""
    sample = tmp_path / "one.npy"
    np.save(sample, np.zeros((1, 32, 32), np.float32))
    model = onnx.load(str(copy.onnx))
    for prop in model.metadata_props:
        if prop.key == "normalization_mean":
            prop.value = "[0.905]"
    onnx.save(model, str(copy.onnx))
    copy.manifest.unlink()
    refused(invoke("predict", copy.root, sample), "manifest.json")


def test_report_respects_the_folder_lock(copy):
    from lenetc.errors import EXIT_RUNTIME
    from lenetc.lock import folder_lock

    with folder_lock(copy.root, "lenetc build (a test)"):
        result = invoke("report", copy.root)
    assert result.exit_code == EXIT_RUNTIME and "is in use by another lenetc command" in (
        result.stderr
    ), result.output


# --- the signature: build --sign, verify --key -------------------------------------------------


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A small build signed with a fresh key, and a second key that did not sign it."""
    keys = tmp_path_factory.mktemp("keys")
    assert invoke("keygen", keys / "mine").exit_code == EXIT_OK
    assert invoke("keygen", keys / "other").exit_code == EXIT_OK
    out = tmp_path_factory.mktemp("signed")
    spec = Path(__file__).resolve().parent.parent / "specs" / "conv2d_example.yaml"
    result = invoke(
        "build", spec, "-o", out, "--epochs", "1", "--runtime", "torch", "--sign", keys / "mine"
    )
    assert result.exit_code == EXIT_OK, result.output
    return BuildDir(out / "conv2d_example"), keys


def test_a_signed_build_verifies_with_its_key_and_after_a_verify_still_does(signed):
    folder, keys = signed
    assert folder.signature.is_file()
    for _ in range(2):  # verify rewrites verify.json and re-seals: the signature still holds
        result = invoke("verify", folder.root, "--runtime", "torch", "--key", keys / "mine.pub")
        assert result.exit_code == EXIT_OK, result.output


def test_verify_key_refuses_another_key_a_resealed_forgery_and_an_unsigned_folder(
    signed, copy, tmp_path
):
    folder, keys = signed
    forged = BuildDir(shutil.copytree(folder.root, tmp_path / "forged"))
    line = refused(invoke("verify", forged.root, "--key", keys / "other.pub"), "manifest.sig")
    assert "not signed by the key in" in line
    nudge_weights(forged, _first_key(forged))
    write_manifest(forged)  # a forger can re-seal, but cannot re-sign
    line = refused(invoke("verify", forged.root, "--key", keys / "mine.pub"), "manifest.json")
    assert "changed since it was signed" in line
    forged.signature.unlink()
    line = refused(invoke("verify", forged.root, "--key", keys / "mine.pub"), "manifest.sig")
    assert "not signed" in line
    refused(invoke("verify", copy.root, "--key", keys / "mine.pub"), "manifest.sig")


def _first_key(out: BuildDir) -> str:
    return next(iter(torch.load(out.weights, weights_only=True)))


def test_keygen_never_overwrites_and_a_bad_key_fails_the_build_before_training(tmp_path):
    key = tmp_path / "key"
    key.write_text("my notes")
    result = invoke("keygen", key)
    assert result.exit_code == 2 and "never overwrites" in result.stderr
    assert key.read_text() == "my notes"
    spec = Path(__file__).resolve().parent.parent / "specs" / "conv2d_example.yaml"
    result = invoke("build", spec, "-o", tmp_path / "b", "--sign", key)
    assert result.exit_code == 2 and "not an unencrypted PEM private key" in result.stderr
    assert not (tmp_path / "b").exists(), "refused before anything was written"


def _with_member(pt2: Path, suffix: str, data: bytes) -> None:
    """Rewrite the .pt2 archive with the member ending in `suffix` replaced by `data`."""
    import io
    import zipfile

    members = []
    with zipfile.ZipFile(pt2) as archive:
        for info in archive.infolist():
            body = data if info.filename.endswith(suffix) else archive.read(info)
            members.append((info.filename, body))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, body in members:
            archive.writestr(name, body)
    pt2.write_bytes(buffer.getvalue())


def test_a_pt2_whose_sample_inputs_are_a_pickle_is_refused_before_torch_loads_it(copy, tmp_path):
    """torch.export.load retries an embedded .pt with weights_only=False: this file would run
    its code in verify's parity stage. It is refused, by integrity and by the runtime alike."""
    import io

    from lenetc.verify.parity import verify_build

    marker = tmp_path / "ran"
    pickled = io.BytesIO()
    torch.save(_Evil(marker), pickled)
    _with_member(copy.pt2, "sample_inputs/model.pt", pickled.getvalue())
    write_manifest(copy)
    line = refused(invoke("verify", copy.root), "model.pt2", "sample_inputs/model.pt")
    assert "refused, never loaded" in line
    report = verify_build(copy.root, runtimes=("torch.export",), write=False)
    (row,) = [r for r in report.runtimes if r.runtime == "torch.export[cpu]"]
    assert row.status == "FAIL" and "refused before torch.export.load" in row.reason
    assert not marker.exists(), "a pickle's code ran"
