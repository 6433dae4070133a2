"""Export (issue 6): artifacts that stand on their own, checked outside lenetc's reach.

Reads the session `lenet_build` (2 epochs of LeNet-5 on digits); tests that change a build copy it.
The ONNX runs use this interpreter with -I -S and a sys.path of only the stdlib and a folder that
links numpy and onnxruntime, so torch, lenetc and model.py are absent, not merely blocked. (A
fresh venv cannot get onnxruntime 1.32 offline here: the local index has only 1.30.) The torch
runs keep site-packages (torch imports a dozen of its neighbours) with -I, in a folder holding
only the artifacts, and a meta-path finder that refuses `lenetc` and `model`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from lenetc import __version__
from lenetc.artifacts import BuildDir
from lenetc.errors import RuntimeFailure, SpecError
from lenetc.export import onnx_meta
from lenetc.export.golden_io import read_test_data
from lenetc.export.manifest import artifact_files, check
from lenetc.spec.load import load_spec

ROOT = Path(__file__).resolve().parent.parent
SITE = Path(np.__file__).resolve().parent.parent  # the venv's site-packages
DOC = ROOT / "README.md"


def _mini_site(tmp: Path, *packages: str) -> Path:
    """A folder holding only links to `packages` (and their .libs): the whole third-party world."""
    site = tmp / "site"
    site.mkdir()
    for name in packages:
        for entry in SITE.glob(f"{name}*"):
            if entry.name == name or entry.name.startswith(f"{name}.libs"):
                (site / entry.name).symlink_to(entry)
    return site


def _run_isolated(script: str, site: Path, cwd: Path, *args: str) -> str:
    """Run `script` with -I -S: no site-packages, no PYTHONPATH, no cwd on sys.path."""
    code = f"import sys; sys.path.append({str(site)!r})\n" + script
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


ABSENT = """
import importlib
for name in ("torch", "lenetc", "model", "onnx"):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        continue
    raise SystemExit(f"{name} is importable, the run is not standalone")
"""

ONNX_STANDALONE = (
    ABSENT
    + """
import json, numpy as np, onnxruntime as ort
build, = sys.argv[1:]
s = ort.InferenceSession(build + "/model.onnx", providers=["CPUExecutionProvider"])
io = np.load(build + "/io.npz")
x, want = io["input"], io["output"]
diffs = {}
for n in (1, 7, 17, len(x), 300):  # batch 1, odd ones, the golden batch, large
    xb = np.resize(x, (n,) + x.shape[1:])
    got = s.run(["logits"], {"input": xb})[0]
    diffs[n] = float(np.abs(got - np.resize(want, (n,) + want.shape[1:])).max())
print(json.dumps({"diffs": diffs, "meta": s.get_modelmeta().custom_metadata_map,
                  "torch_loaded": "torch" in sys.modules}))
"""
)


def test_onnx_runs_without_torch_or_lenetc_and_reproduces_io_npz(lenet_build, tmp_path):
    site = _mini_site(tmp_path, "numpy", "onnxruntime")
    result = json.loads(_run_isolated(ONNX_STANDALONE, site, tmp_path, str(lenet_build.root)))
    assert not result["torch_loaded"]
    diffs = {int(k): v for k, v in result["diffs"].items()}
    assert set(diffs) == {1, 7, 17, 24, 300}
    assert max(diffs.values()) < 1e-5, diffs  # float32 ORT vs float32 torch: ~5e-7 seen
    assert set(result["meta"]) == set(onnx_meta.KEYS)


def test_readme_python_snippet_runs_standalone_on_raw_samples(lenet_build, tmp_path):
    """The docs' snippet normalizes raw samples with the metadata alone and matches io.npz."""
    text = DOC.read_text(encoding="utf-8")
    snippet = re.search(r"```python\n(# standalone.*?)```", text, re.S)
    assert snippet, f"{DOC} lost its '# standalone' python block"
    info = onnx_meta.read(_metadata(lenet_build))
    io = np.load(lenet_build.io_npz)
    raw = io["input"] * np.asarray(info.std).reshape(1, -1, 1, 1) + np.asarray(info.mean).reshape(
        1, -1, 1, 1
    )
    np.save(tmp_path / "raw.npy", raw.astype(np.float32))
    site = _mini_site(tmp_path, "numpy", "onnxruntime")
    out = _run_isolated(
        ABSENT + snippet.group(1), site, tmp_path, str(lenet_build.root), str(tmp_path / "raw.npy")
    )
    labels = [line.split()[1] for line in out.strip().splitlines()]
    want = [info.labels[i] for i in io["output"].argmax(axis=1)]
    assert labels == want


TORCH_STANDALONE = """
import importlib.abc

class Block(importlib.abc.MetaPathFinder):  # in case lenetc is pip-installed in this venv
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("lenetc", "model"):
            raise ModuleNotFoundError(f"{name} is kept out of reach")

sys.meta_path.insert(0, Block())
import json, warnings, numpy as np, torch
folder, = sys.argv[1:]
io = np.load(folder + "/io.npz")
x = torch.from_numpy(io["input"])
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # jit.load is deprecated in 2.13
    ts = torch.jit.load(folder + "/model.torchscript.pt")
ep = torch.export.load(folder + "/model.pt2").module()
state = torch.load(folder + "/weights.pt", weights_only=True)
with torch.no_grad():
    d_ts = {n: float((ts(x[:n]) - torch.from_numpy(io["output"][:n])).abs().max())
            for n in (1, 7, len(x))}
    d_ep = {n: float((ep(x[:n]) - torch.from_numpy(io["output"][:n])).abs().max())
            for n in (1, 7, len(x))}
shapes = {k: list(v.shape) for k, v in state.items()}
print(json.dumps({"ts": d_ts, "pt2": d_ep, "weights": shapes}))
"""


def test_torchscript_pt2_and_weights_load_without_lenetc_or_model_py(lenet_build, tmp_path):
    alone = tmp_path / "alone"  # only the artifacts: no model.py beside them, no lenetc on the path
    alone.mkdir()
    for name in ("model.torchscript.pt", "model.pt2", "weights.pt", "io.npz"):
        shutil.copy(lenet_build.root / name, alone / name)
    # torch needs half of site-packages (torchgen, sympy, ...): keep them all, block lenetc
    proc = subprocess.run(
        [sys.executable, "-I", "-c", "import sys\n" + TORCH_STANDALONE, str(alone)],
        cwd=alone,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    for kind in ("ts", "pt2"):
        diffs = {int(k): v for k, v in result[kind].items()}
        assert set(diffs) == {1, 7, 24}
        assert max(diffs.values()) < 1e-5, (kind, diffs)
    assert result["weights"]["conv1.weight"] == [6, 1, 5, 5]
    assert result["weights"]["fc3.bias"] == [10]


def _metadata(build: BuildDir) -> dict[str, str]:
    model = onnx.load(str(build.onnx))
    return {p.key: p.value for p in model.metadata_props}


def test_onnx_file_is_checked_single_named_and_dynamic(lenet_build):
    model = onnx.load(str(lenet_build.onnx), load_external_data=False)
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["logits"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 32, 32]
    assert [o.version for o in model.opset_import if o.domain == ""] == [18]
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    floats = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT]
    assert sum(int(np.prod(t.dims)) for t in floats) == 61_706  # every weight is inside
    assert not list(lenet_build.root.glob("*.data"))


def test_onnx_metadata_says_how_to_feed_the_model(lenet_build):
    meta = _metadata(lenet_build)
    assert list(meta) == list(onnx_meta.KEYS)
    spec_bytes = lenet_build.spec.read_bytes()
    assert meta["spec_sha256"] == hashlib.sha256(spec_bytes).hexdigest()
    assert meta["lenetc_version"] == __version__
    assert meta["dataset"] == "digits"
    assert meta["input_layout"] == "NCHW"
    assert json.loads(meta["input_shape"]) == ["N", 1, 32, 32]
    assert meta["output_kind"] == "logits"
    assert json.loads(meta["class_labels"]) == [str(i) for i in range(10)]
    info = onnx_meta.read(meta)
    # digits pixels are 0..16 / 16; their training-split mean and std, resized to 32 x 32
    assert info.input_range == (pytest.approx(0.0, abs=1e-6), pytest.approx(1.0, abs=1e-6))
    assert 0.25 < info.mean[0] < 0.40 and 0.30 < info.std[0] < 0.45, (info.mean, info.std)
    # the stored normalization undoes what training fed: held-out inputs de-normalize into range
    raw = np.load(lenet_build.io_npz)["input"][:16] * info.std[0] + info.mean[0]
    assert raw.min() > -1e-5 and raw.max() < 1 + 1e-5


def test_golden_bundle_matches_test_data_set_and_onnxruntime(lenet_build):
    import onnxruntime as ort

    io = np.load(lenet_build.io_npz)
    assert io["input"].shape == (24, 1, 32, 32) and io["output"].shape == (24, 10)
    assert (io["label"][:16] >= 0).all() and (io["label"][16:] == -1).all()
    x, y = read_test_data(lenet_build.test_data)
    np.testing.assert_array_equal(x, io["input"])
    np.testing.assert_array_equal(y, io["output"])
    tensor = onnx.TensorProto()
    tensor.ParseFromString((lenet_build.test_data / "input_0.pb").read_bytes())
    assert tensor.name == "input"
    session = ort.InferenceSession(str(lenet_build.onnx), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x})[0]
    assert np.abs(got - y).max() < 1e-5


def test_manifest_hashes_every_artifact_and_versions(lenet_build, tmp_path):
    manifest = json.loads(lenet_build.manifest.read_text())
    names = set(manifest["artifacts"])
    expected = {
        "spec.yaml",
        "model.py",
        "weights.pt",
        "model.onnx",
        "model.torchscript.pt",
        "model.pt2",
        "metrics.jsonl",
        "verify.json",
        "io.npz",
        "test_data_set_0/input_0.pb",
        "test_data_set_0/output_0.pb",
    }
    assert expected <= names
    assert names == {
        p.relative_to(lenet_build.root).as_posix() for p in artifact_files(lenet_build)
    }
    for name, entry in manifest["artifacts"].items():
        data = (lenet_build.root / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"]
    assert set(manifest["versions"]) >= {"python", "torch", "onnx", "onnxruntime", "lenetc"}
    assert manifest["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    copy = BuildDir(tmp_path / "b")
    shutil.copytree(lenet_build.root, copy.root)
    with open(copy.onnx, "ab") as handle:
        handle.write(b"\0")
    assert check(copy, manifest) == ["model.onnx"]


def test_opset_range_is_enforced_by_the_spec(tmp_path):
    from lenetc.spec.config import OPSETS

    assert OPSETS == (13, 25)
    text = (ROOT / "specs" / "lenet5.yaml").read_text()
    for opset, ok in ((12, False), (13, True), (17, True), (18, True), (25, True), (26, False)):
        path = tmp_path / f"s{opset}.yaml"
        path.write_text(text.replace("opset: 18", f"opset: {opset}"))
        if ok:
            assert load_spec(path).export.opset == opset
        else:
            with pytest.raises(SpecError, match="outside the supported range 13 to 25"):
                load_spec(path)


@pytest.fixture()
def loaded(lenet_build, tmp_path):
    """A copy of the build and its trained module, for tests that export again."""
    from lenetc.export.exporters import DataFacts
    from lenetc.train.datasets import Dataset
    from lenetc.verify.parity import reference_model

    copy = BuildDir(tmp_path / "b")
    shutil.copytree(lenet_build.root, copy.root)
    spec = load_spec(copy.spec)
    held = np.load(copy.heldout)
    info = onnx_meta.read(_metadata(copy))
    data = Dataset(
        "digits",
        held["x"],
        held["y"],
        held["x"][:0],
        held["y"][:0],
        held["x"],
        held["y"],
        info.mean,
        info.std,
        info.labels,
    )
    return copy, spec, reference_model(copy, spec), DataFacts.from_dataset(data)


def test_highest_opset_exports_and_runs(loaded):
    import dataclasses

    from lenetc.export.exporters import export_onnx

    out, spec, model, facts = loaded
    spec = dataclasses.replace(spec, export=dataclasses.replace(spec.export, opset=25))
    diffs = export_onnx(model, spec, facts, out)
    assert set(diffs) == {1, 7, 300} and max(diffs.values()) < 1e-5
    assert [o.version for o in onnx.load(str(out.onnx)).opset_import if o.domain == ""] == [25]


def test_export_failure_names_stage_and_layer_in_one_line(loaded, monkeypatch):
    import functools

    import torch

    from lenetc.export.exporters import export_onnx

    out, spec, model, facts = loaded
    calls = []

    def relu_fails_second_time(x):
        calls.append(x)
        if len(calls) == 2:
            raise ValueError("injected failure")
        from onnxscript.onnx_opset import opset18 as op

        return op.Relu(x)

    monkeypatch.setattr(
        torch.onnx,
        "export",
        functools.partial(
            torch.onnx.export,
            custom_translation_table={torch.ops.aten.relu.default: relu_fails_second_time},
        ),
    )
    before = out.onnx.read_bytes()
    with pytest.raises(RuntimeFailure) as info:
        export_onnx(model, spec, facts, out)
    message = str(info.value)
    assert "\n" not in message
    relu2 = next(n for n in spec.nodes if n.name == "relu2")
    assert message == (
        f"export stage onnx failed at layer relu2 (relu), {spec.path}:{relu2.line}: "
        "ValueError: injected failure"
    )
    assert out.onnx.read_bytes() == before  # the old artifact stays whole


def test_export_failure_from_a_traceback_through_model_py(loaded):
    from lenetc.export.failure import locate

    out, spec, model, facts = loaded
    source = out.model_py.read_text().splitlines()
    line = next(i for i, s in enumerate(source, 1) if "self.fc2(" in s)
    exc = RuntimeError(f'File "{out.model_py}", line {line}, in forward: bad op')
    assert locate(exc, spec, out.model_py).name == "fc2"


def test_known_warnings_dropped_by_message_others_kept(loaded):
    import warnings

    from lenetc.export.exporters import TORCHSCRIPT_WARNINGS, expected_warnings, export_torchscript

    out, spec, model, _ = loaded
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_torchscript(model, spec, out)
        with expected_warnings(TORCHSCRIPT_WARNINGS):
            deprecated = "`torch.jit.script` is deprecated. Please switch"
            warnings.warn(deprecated, DeprecationWarning, stacklevel=1)
            warnings.warn("something new", DeprecationWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something new"]


def test_weights_are_a_plain_state_dict(lenet_build):
    import torch

    state = torch.load(lenet_build.weights, weights_only=True)
    assert type(state) is dict and all(isinstance(v, torch.Tensor) for v in state.values())
    assert sum(v.numel() for v in state.values()) == 61_706


KILLED_EXPORT = """
import os, sys, time
from pathlib import Path
import numpy as np
from lenetc.artifacts import BuildDir
from lenetc.train.datasets import Dataset
from lenetc.export.exporters import DataFacts, export_all
from lenetc.spec.load import load_spec
from lenetc.verify.parity import reference_model

out = BuildDir(Path(sys.argv[1]))
spec = load_spec(out.spec)
held = np.load(out.heldout)
data = Dataset("digits", held["x"], held["y"], held["x"][:0], held["y"][:0], held["x"],
               held["y"], (0.3,), (0.4,), tuple(str(i) for i in range(10)))
real_fsync = os.fsync

def fsync(fd):  # stop dead inside the write of model.onnx, once its bytes are on disk
    if ".model.onnx." in os.readlink(f"/proc/self/fd/{fd}"):
        print("writing", flush=True)
        time.sleep(60)
    real_fsync(fd)

os.fsync = fsync
export_all(reference_model(out, spec), spec, DataFacts.from_dataset(data), out)
"""


def test_export_killed_midway_leaves_no_partial_artifact(lenet_build, tmp_path):
    out = BuildDir(tmp_path / "b")
    shutil.copytree(lenet_build.root, out.root)
    for name in ("model.onnx", "model.torchscript.pt", "model.pt2", "io.npz"):
        (out.root / name).unlink()
    weights = out.weights.read_bytes()
    shutil.rmtree(out.test_data)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_EXPORT, str(out.root)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "writing", proc.stderr.read()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    names = {p.name for p in out.root.iterdir()}
    assert out.weights.read_bytes() == weights  # rewritten whole before the kill
    assert not names & {
        "model.onnx",
        "model.torchscript.pt",
        "model.pt2",
        "io.npz",
        "test_data_set_0",
    }
    leftovers = [n for n in names if n.startswith(".model.onnx.")]
    assert len(leftovers) == 1  # SIGKILL leaves the hidden temporary; nothing uses that name
    assert (out.root / leftovers[0]).stat().st_size > 200_000  # the bytes were all there
    assert all(not p.name.startswith(".") for p in artifact_files(out))


def test_exception_while_writing_a_folder_keeps_the_old_one(lenet_build, tmp_path, monkeypatch):
    from lenetc.export.golden_io import Bundle, write_bundle

    out = BuildDir(tmp_path / "b")
    shutil.copytree(lenet_build.root, out.root)
    before = {p.name: p.read_bytes() for p in out.test_data.iterdir()}
    from onnx import numpy_helper

    real, calls = numpy_helper.from_array, []

    def from_array(array, name):
        calls.append(name)
        if len(calls) == 2:  # input_0.pb is written in the temporary folder; output_0.pb fails
            raise OSError("disk full (injected)")
        return real(array, name)

    monkeypatch.setattr(numpy_helper, "from_array", from_array)
    bundle = Bundle(
        np.zeros((2, 1, 32, 32), np.float32), np.zeros((2, 10), np.float32), np.zeros(2, np.int64)
    )
    started = time.time()
    with pytest.raises(OSError, match="injected"):
        write_bundle(bundle, out, "input", "logits")
    assert time.time() - started < 5
    assert {p.name: p.read_bytes() for p in out.test_data.iterdir()} == before
    assert not [p for p in out.root.iterdir() if p.name.startswith(".")]
