"""`lenetc check` from the command line: golden tables for every spec, --json, no torch, no writes.

Golden tables: tests/golden/check/<spec>.txt and <spec>.json (pytest --update-golden rewrites).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from lenetc.cli import main
from lenetc.layers import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}


def check(*args: str):
    return CliRunner().invoke(main, ["check", *args], catch_exceptions=False)


@pytest.fixture(autouse=True)
def _in_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # paths in the output read specs/x.yaml


def test_the_seed_and_lead_specs_are_there():
    names = {p.stem for p in SPECS}
    assert {"lenet5", "tutorial_net", "conv2d_example"} <= names
    assert len(names) >= 6


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_spec_checks_golden_table(spec: Path, golden):
    result = check(f"specs/{spec.name}")
    assert result.exit_code == 0, result.output
    golden.check(f"check/{spec.stem}.txt", result.stdout)


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_spec_checks_golden_json(spec: Path, golden):
    result = check(f"specs/{spec.name}", "--json")
    assert result.exit_code == 0, result.output
    value = json.loads(result.stdout)
    # the JSON contract for tools (README.md, `check --json`)
    assert {"name", "input_shape", "output_shape", "params", "flops", "layers"} <= set(value)
    for layer in value["layers"]:
        assert {"name", "type", "output_shape", "params", "flops"} <= set(layer)
        assert layer["type"] in REGISTRY
    assert value["params"] == sum(layer["params"] for layer in value["layers"])
    assert value["flops"] == sum(layer["flops"] for layer in value["layers"])
    assert value["output_shape"] == value["layers"][-1]["output_shape"]
    golden.check(f"check/{spec.stem}.json", result.stdout)


PUBLISHED = {"alexnet": 61_100_840, "vgg16": 138_357_544}  # torchvision's published counts


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_networks_check_with_torchvision_counts(name: str, golden):
    """Any size is reported exactly: check allocates nothing, so it has no parameter cap."""
    result = CliRunner().invoke(main, ["check", f"specs/published/{name}.yaml", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["params"] == PUBLISHED[name]
    table = CliRunner().invoke(main, ["check", f"specs/published/{name}.yaml"]).stdout
    golden.check(f"check/published_{name}.txt", table)


def test_lenet5_derivation_reads_like_the_seed():
    out = check("specs/lenet5.yaml").stdout
    for text in ("32 - 5 + 1 = 28", "28 / 2 = 14", "14 - 5 + 1 = 10", "10 / 2 = 5",
                 "16 x 5 x 5 = 400", "61,706"):  # fmt: skip
        assert text in out, text


def test_seed_networks():
    """The three networks of the seed note, with the numbers it derives."""
    tutorial = json.loads(check("specs/tutorial_net.yaml", "--json").stdout)
    fc1 = next(layer for layer in tutorial["layers"] if layer["name"] == "fc1")
    assert fc1["input_shape"] == [576] and fc1["params"] == 576 * 120 + 120
    example = json.loads(check("specs/conv2d_example.yaml", "--json").stdout)
    assert example["layers"][0]["output_shape"] == [8, 6, 1]
    lenet = json.loads(check("specs/lenet5.yaml", "--json").stdout)
    assert lenet["params"] == 61_706 and lenet["output_shape"] == [10]


# ---- the fast inner loop: no torch, no writes --------------------------------------------------

_PROBE = """
import sys
from lenetc.cli import main
try:
    main([{args}])
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "numpy", "onnx",
               "onnxruntime", "sklearn"))
print("HEAVY", heavy, "EXIT", code, file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    ["'check', 'specs/lenet5.yaml'", "'check', '--json', 'specs/vgg_small.yaml'",
     "'check', 'specs/invalid/in_features_wrong.yaml'", "'render', 'specs/lenet5.yaml'"],
)  # fmt: skip
def test_check_and_render_never_import_torch(args: str):
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE.format(args=args)],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("HEAVY [] EXIT"), proc.stderr


def test_check_writes_nothing(tmp_path: Path):
    spec = tmp_path / "lenet5.yaml"
    spec.write_bytes((ROOT / "specs" / "lenet5.yaml").read_bytes())
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    for extra in ([], ["--json"]):
        proc = subprocess.run(
            [sys.executable, "-m", "lenetc", "check", "lenet5.yaml", *extra],
            cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


def test_check_process_is_quick():
    """Loose bound (CI machines vary): the real target, well under 0.3 s, is that no heavy library
    loads (test above); this only catches a check that started doing real work."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "lenetc", "check", "specs/lenet5.yaml"],
        cwd=ROOT, env=ENV, capture_output=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0
    assert time.perf_counter() - start < 2.0  # ~0.2 s idle; 0.7 s seen at load average 8


def test_exit_codes_from_a_real_process():
    ok = subprocess.run([sys.executable, "-m", "lenetc", "check", "specs/lenet5.yaml"],
                        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60)  # fmt: skip
    bad = subprocess.run([sys.executable, "-m", "lenetc", "check", "specs/invalid/empty.yaml"],
                         cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ok.returncode == 0 and bad.returncode == 2
    assert bad.stderr.startswith("specs/invalid/empty.yaml:1: the spec is empty")
    assert "Traceback" not in bad.stderr and bad.stdout == ""
