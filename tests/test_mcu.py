"""Microcontrollers: c/selftest.c on the host for every shipped spec, a corrupted expected value
failing it, the Cortex-M rows under QEMU (bit-exact with the host's -O2 build on LeNet-5), the
device's faults, deadlines and exit statuses, and the rows' behaviour without the toolchain.

The cross toolchain and QEMU are optional system packages (`make deps`): tests that need them
skip outside CI naming the install command, and fail under CI=true (tests/tools.py).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_c_target import _make_build
from tools import require_tool, unavailable

from lenetc.artifacts import BuildDir, load_module_class
from lenetc.check.shapes import check
from lenetc.cli import main
from lenetc.export.c_selftest import export_selftest
from lenetc.export.golden_io import make_bundle, write_bundle
from lenetc.runtimes import cross
from lenetc.runtimes.base import RuntimeProblem
from lenetc.runtimes.footprint import measure
from lenetc.runtimes.qemu import VARIANTS, Qemu, device_program
from lenetc.spec.load import load_spec
from lenetc.targets.c.footprint import footprints
from lenetc.verify.parity import verify_build

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
M4 = cross.core("cortex-m4")


def _require_cross() -> None:
    """The toolchain, QEMU and newlib, or a skip naming `make deps` (a failure under CI=true)."""
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    why = cross.missing()
    if why is not None:
        unavailable(why)


def _with_golden(spec_path: Path, root: Path) -> BuildDir:
    """A C build without training (seeded random weights), its io.npz from the torch module as
    the export stage writes it, and c/selftest.c from that."""
    out = _make_build(spec_path, root)
    spec = load_spec(out.spec)
    model = load_module_class(out.model_py, spec.class_name)()
    model.load_state_dict(torch.load(out.weights, weights_only=True))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20,) + spec.input_shape).astype(np.float32)
    classes = check(spec).output_shape[0]
    bundle = make_bundle(model, spec, x, rng.integers(0, classes, 20))
    write_bundle(bundle, out, "input", "logits")
    export_selftest(out, spec)
    return out


@pytest.fixture(scope="module")
def golden_builds(tmp_path_factory) -> dict[str, BuildDir]:
    root = tmp_path_factory.mktemp("selftest")
    return {p.stem: _with_golden(p, root) for p in SPECS}


def _make_selftest(c_dir: Path, into: Path) -> Path:
    """`make selftest` in a copy of c/ (the build folder stays as its manifest says)."""
    shutil.copytree(c_dir, into)
    done = subprocess.run(["make", "selftest"], cwd=into, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return into / "selftest"


def _corrupt_first_expected(text: str) -> str:
    """selftest.c with the first expected output replaced by 8.0 (far outside any tolerance)."""
    at = text.index("golden_output[SELFTEST_SAMPLES]")
    start = text.index("0x", text.index("/* sample 0 */", at)) - 1
    start += text[start] != "-" and 1  # keep a minus sign out of the replacement
    end = text.index(",", start)
    return text[:start] + "0x1p+3f" + text[end:]


@pytest.mark.parametrize("spec", [p.stem for p in SPECS])
def test_selftest_passes_on_the_host_for_every_shipped_spec(spec, golden_builds, tmp_path) -> None:
    binary = _make_selftest(golden_builds[spec].c_dir, tmp_path / "c")
    done = subprocess.run([binary], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout
    assert f"selftest {spec}: 24 samples, max |out - expected| = " in done.stdout
    assert "0 of " in done.stdout and done.stdout.rstrip().endswith(": PASS")


def test_selftest_holds_io_npz_exactly(golden_builds) -> None:
    out = golden_builds["lenet5"]
    text = (out.c_dir / "selftest.c").read_text(encoding="utf-8")
    io = np.load(out.io_npz)
    for name, array in (("golden_input", io["input"]), ("golden_output", io["output"])):
        body = text[text.index(f"{name}[SELFTEST_SAMPLES]") :]
        body = body[body.index("{") : body.index("};")]
        values = [float.fromhex(t) for t in re.findall(r"-?0x[0-9a-f.]+p[-+]\d+", body)]
        assert np.array_equal(np.asarray(values, np.float32), array.ravel()), name
    assert "#define SELFTEST_ATOL 1e-05" in text and "#define SELFTEST_RTOL 0.0001" in text


def test_a_corrupted_expected_value_makes_the_selftest_exit_1(golden_builds, tmp_path) -> None:
    c_dir = tmp_path / "c"
    shutil.copytree(golden_builds["lenet5"].c_dir, c_dir)
    path = c_dir / "selftest.c"
    path.write_text(_corrupt_first_expected(path.read_text(encoding="utf-8")), encoding="utf-8")
    binary = _make_selftest(c_dir, tmp_path / "made")
    done = subprocess.run([binary], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout
    assert "(sample 0, output 0)" in done.stdout and "1 of 240 outputs outside" in done.stdout
    assert done.stdout.rstrip().endswith(": FAIL")


# ---- on the device --------------------------------------------------------------------------


def _device_selftest(out: BuildDir, core: cross.Core, selftest: str | None = None) -> str:
    sources = {n: (out.c_dir / n).read_text(encoding="utf-8") for n in VARIANTS[0].sources}
    sources["selftest.c"] = selftest or (out.c_dir / "selftest.c").read_text(encoding="utf-8")
    elf = cross.firmware(core, sources, "selftest.c", "selftest")
    return cross.run_qemu(elf, core, timeout=120)


@pytest.mark.parametrize("core", cross.CORES, ids=[c.name for c in cross.CORES])
def test_the_selftest_runs_unchanged_on_each_core(core, golden_builds, tmp_path) -> None:
    _require_cross()
    out = golden_builds["lenet5"]
    said = _device_selftest(out, core)
    host = subprocess.run(
        [_make_selftest(out.c_dir, tmp_path / "c")], capture_output=True, text=True
    ).stdout
    assert said == host  # the same max error, the same sample: the same bits


def test_a_failing_selftest_exit_status_reaches_the_host(golden_builds) -> None:
    _require_cross()
    out = golden_builds["lenet5"]
    bad = _corrupt_first_expected((out.c_dir / "selftest.c").read_text(encoding="utf-8"))
    with pytest.raises(RuntimeProblem, match=r"cortex-m4 under QEMU \(mps2-an386\): .*FAIL"):
        _device_selftest(out, M4, bad)


def _tiny(body: str) -> Path:
    return cross.firmware(M4, {"main.c": "int main(void) {\n" + body + "\n}\n"}, "main.c", "t")


def test_a_fault_on_the_device_is_reported_not_hung() -> None:
    _require_cross()
    started = time.monotonic()
    with pytest.raises(RuntimeProblem, match=r"device fault: exception 0x00000003, CFSR 0x0001"):
        cross.run_qemu(_tiny('__asm__ volatile("udf #0");\nreturn 0;'), M4, timeout=60)
    assert time.monotonic() - started < 30


def test_a_program_that_never_ends_is_killed_at_its_deadline() -> None:
    _require_cross()
    started = time.monotonic()
    with pytest.raises(RuntimeProblem, match=r"did not finish within 3 s"):
        cross.run_qemu(_tiny("for (;;) {\n}"), M4, timeout=3)
    assert time.monotonic() - started < 20


def test_main_s_exit_status_reaches_the_host() -> None:
    _require_cross()
    assert cross.run_qemu(_tiny("return 0;"), M4) == ""
    with pytest.raises(RuntimeProblem, match="exit status 5"):
        cross.run_qemu(_tiny("return 5;"), M4)


def test_lenet5_on_both_cores_passes_and_is_bit_exact_with_the_host(lenet_build) -> None:
    """The goal: LeNet-5 float on the Cortex-M4F within tolerance and bit for bit the host's -O2
    build; the soft float M3 too."""
    _require_cross()
    report = verify_build(lenet_build.root, runtimes=("qemu", "c"), write=False)
    rows = {r.runtime: r for r in report.runtimes}
    assert list(rows) == ["c[cpu]", "c[cortex-m4,qemu]", "c[cortex-m3,qemu]"]
    for name in ("c[cortex-m4,qemu]", "c[cortex-m3,qemu]"):
        row = rows[name]
        assert row.status == "PASS", row.reason
        (out,) = row.outputs
        assert out.elements == 2 * (1 + 3 + 64) * 10 and out.argmax_agreement == 1.0
        assert out.max_abs == rows["c[cpu]"].outputs[0].max_abs
        assert row.notes[0].startswith("bit-exact with the host's build (")
        assert row.notes[0].endswith(": 1360 of 1360 outputs")


def test_a_nudged_weight_fails_the_device_rows(lenet_build, tmp_path) -> None:
    _require_cross()
    build = tmp_path / "lenet5"
    shutil.copytree(lenet_build.root, build)
    weights = build / "c" / "model_weights.h"
    text = weights.read_text(encoding="utf-8")
    at = text.index("static const float fc3_bias")
    at = text.index("0x", at) - (text[text.index("0x", at) - 1] == "-")
    end = text.index(",", at)
    weights.write_text(text[:at] + "0x1p+4f" + text[end:], encoding="utf-8")
    report = verify_build(build, runtimes=("qemu",), write=False)
    for row in report.runtimes:
        assert row.status == "FAIL" and row.outputs[0].max_abs > 1, row.runtime


def test_without_the_toolchain_the_rows_are_unavailable_and_fail_in_ci(
    lenet_build, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no arm-none-eabi-gcc, no qemu-system-arm
    spec = load_spec(lenet_build.spec)
    row = Qemu(lenet_build, spec, M4, VARIANTS[0])
    why = row.unavailable()
    assert why is not None and "is not installed; install: make deps" in why
    monkeypatch.delenv("CI", raising=False)
    report = verify_build(lenet_build.root, runtimes=("qemu",), write=False)
    assert [r.status for r in report.runtimes] == ["unavailable", "unavailable"]
    monkeypatch.setenv("CI", "true")
    report = verify_build(lenet_build.root, runtimes=("qemu",), write=False)
    assert [r.status for r in report.runtimes] == ["FAIL", "FAIL"]
    assert "make deps" in report.runtimes[0].reason


STRICT = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Werror")


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_selftest_is_strict_c99_and_clang_formatted(compiler, golden_builds, tmp_path) -> None:
    require_tool(compiler)
    require_tool("clang-format")
    c_dir = golden_builds["inception_small"].c_dir  # a graph: joins, batch norm
    command = [compiler, *STRICT, "-o", str(tmp_path / "t"), "selftest.c", "model.c", "-lm"]
    done = subprocess.run(command, cwd=c_dir, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    style = f"--style=file:{ROOT / '.clang-format'}"
    formatted = subprocess.run(
        ["clang-format", style, str(c_dir / "selftest.c")], capture_output=True, text=True
    ).stdout
    assert formatted == (c_dir / "selftest.c").read_text(encoding="utf-8")


@pytest.mark.parametrize("core", cross.CORES, ids=[c.name for c in cross.CORES])
def test_the_firmware_sources_cross_compile_warning_free(core, golden_builds, tmp_path) -> None:
    _require_cross()
    out = golden_builds["lenet5"]
    for name, text in cross.firmware_sources().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "run.c").write_text(
        device_program(load_spec(out.spec), VARIANTS[0]), encoding="utf-8"
    )
    for name in ("startup.c", "run.c", "selftest.c", "model.c"):
        src = tmp_path / name if (tmp_path / name).is_file() else out.c_dir / name
        command = [cross.GCC, *core.flags, *STRICT, f"-I{out.c_dir}", "-c", str(src)]
        done = subprocess.run(
            command + ["-o", str(tmp_path / "x.o")], capture_output=True, text=True
        )
        assert done.returncode == 0, (name, done.stderr)


# ---- footprint --------------------------------------------------------------------------------


def _macro(header: str, name: str) -> int:
    return int(re.search(rf"#define {name} (\d+)", header)[1])


@pytest.mark.parametrize("spec", [p.stem for p in SPECS])
def test_model_h_states_the_plan_and_the_cross_compiler_agrees(spec, golden_builds) -> None:
    """ARENA_BYTES is model.o's bss to the byte; WEIGHT_BYTES its constants, with code besides."""
    out = golden_builds[spec]
    header = (out.c_dir / "model.h").read_text(encoding="utf-8")
    arena = _macro(header, f"{spec.upper()}_ARENA_BYTES")
    weights = _macro(header, f"{spec.upper()}_WEIGHT_BYTES")
    (stated,) = footprints(check(load_spec(out.spec)))
    assert (stated.arena_bytes, stated.weight_bytes) == (arena, weights)
    _require_cross()
    data = measure(out, load_spec(out.spec))
    for core in cross.CORES:
        m = data["measured"][f"c[{core.name}]"]
        assert m["model"]["bss"] == arena and m["model"]["data"] == 0, m
        assert weights < m["flash_bytes"] < weights + 16 * 1024, m  # code: a few KB
        assert m["selftest"]["text"] > m["model"]["text"]


def test_check_prints_the_footprint_and_refuses_a_network_over_budget(tmp_path) -> None:
    spec = tmp_path / "lenet5.yaml"
    text = (ROOT / "specs/lenet5.yaml").read_text(encoding="utf-8")
    spec.write_text(text + "target: {flash: 1MB, ram: 256KB}\n", encoding="utf-8")
    ok = CliRunner().invoke(main, ["check", str(spec)])
    assert ok.exit_code == 0, ok.output
    assert (
        "C target (float) on a device: RAM 27,656 bytes (27.0 KB: arena 23,520 + input "
        in ok.output
    )
    assert "flash 247,032 bytes (241.2 KB) of weights, plus code" in ok.output
    assert "target: flash 1.00 MB, ram 256.0 KB: fits" in ok.output
    line = text.count("\n") + 1
    spec.write_text(text + "target: {flash: 200KB, ram: 16384}\n", encoding="utf-8")
    bad = CliRunner().invoke(main, ["check", str(spec)])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert bad.stderr.splitlines() == [
        f"{spec}:{line}: target.flash: the C target (float) needs 247,032 bytes of flash "
        "(241.2 KB), over the budget of 204,800 bytes (200.0 KB); the largest layer is fc1 "
        "(linear, line 15), 192,480 bytes of weights",
        "  hint: make fc1 smaller (fewer features or channels), or raise target.flash",
        f"{spec}:{line}: target.ram: the C target (float) needs 27,656 bytes of RAM (27.0 KB), "
        "over the budget of 16,384 bytes (16.0 KB); the largest layer is conv1 (conv2d, line 8), "
        "18,816 bytes for its output",
        "  hint: shrink conv1's output (fewer channels, a stride), or raise target.ram",
    ]
    data = json.loads(
        CliRunner().invoke(main, ["check", str(ROOT / "specs/lenet5.yaml"), "--json"]).stdout
    )
    assert data["footprint"]["float"]["flash_bytes"] == 247032
    assert data["footprint"]["float"]["largest_weights"]["layer"] == "fc1"


def test_build_refuses_a_network_over_budget_before_training(tmp_path) -> None:
    spec = tmp_path / "lenet5.yaml"
    text = (ROOT / "specs/lenet5.yaml").read_text(encoding="utf-8")
    spec.write_text(text + "target:\n  flash: 64KB\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["build", str(spec), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "target.flash:" in result.stderr
    assert f"{spec}:{text.count(chr(10)) + 2}: " in result.stderr  # the flash key's own line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("budget", "said"),
    [
        ("{flash: lots}", "target.flash: expected a size such as 256KB, 1MB or 65536 (bytes)"),
        ("{flash: 0KB}", "target.flash: expected a size such as 256KB"),
        ("{rom: 1MB}", "unknown key 'rom' in target"),
        ("[1MB]", "target must be a mapping"),
    ],
)
def test_a_bad_budget_is_a_located_spec_error(budget, said, tmp_path) -> None:
    spec = tmp_path / "lenet5.yaml"
    text = (ROOT / "specs/lenet5.yaml").read_text(encoding="utf-8")
    spec.write_text(text + f"target: {budget}\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["check", str(spec)])
    assert result.exit_code == 2 and f"{spec}:{text.count(chr(10)) + 1}: " in result.stderr
    assert said in result.stderr and "Traceback" not in result.output


def test_the_build_records_the_footprint_in_the_manifest_and_the_report(lenet_build) -> None:
    data = json.loads(lenet_build.footprint.read_text())
    assert data["stated"]["float"]["weight_bytes"] == 247032
    manifest = json.loads(lenet_build.manifest.read_text())
    assert "footprint.json" in manifest["artifacts"]
    assert "c/selftest.c" in manifest["artifacts"]
    html = lenet_build.report.read_text(encoding="utf-8")
    assert 'id="footprint-stated"' in html and "247,032" in html
    if cross.missing() is None:
        m4 = data["measured"]["c[cortex-m4]"]
        assert '<tr data-build="c[cortex-m4]">' in html and f"{m4['flash_bytes']:,}" in html
        assert "bit-exact with the host" in html  # the device rows' notes, under the parity table
    else:
        assert data["measured"] == {"unavailable": cross.missing()}


def test_bench_counts_emulated_instructions_on_each_core(lenet_build, tmp_path) -> None:
    _require_cross()
    build = tmp_path / "lenet5"
    shutil.copytree(lenet_build.root, build)
    result = CliRunner().invoke(
        main, ["bench", str(build), "--runtime", "qemu", "--batch", "1", "--repeats", "3"]
    )
    assert result.exit_code == 0, result.output
    rows = {r["runtime"]: r for r in json.loads((build / "bench.json").read_text())["runtimes"]}
    m4, m3 = rows["c[cortex-m4,qemu]"], rows["c[cortex-m3,qemu]"]
    assert m4["status"] == m3["status"] == "emulated" and m4["samples"] == 1
    # a plausible count, not a performance bound (2.4M before the kernels per kind, 4.6M after)
    assert 1e6 < m4["instructions"] < 1e7 and m3["instructions"] > 5 * m4["instructions"]
    assert re.search(
        r"^c\[cortex-m4,qemu\] +c/model\.c +\d\.\d\dM instructions$", result.stdout, re.M
    )
    assert (
        "emulated instructions per inference on cortex-m4, hard float (mps2-an386)" in result.stdout
    )
    assert "not cycles, not wall time" in result.stdout


def test_readme_footprint_table_is_what_check_states() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| spec | parameters | weights (bytes)") :]
    table = table[: table.index("\n\n")]
    shipped = SPECS + sorted((ROOT / "specs/published").glob("*.yaml"))
    for path in shipped:
        name = path.relative_to(ROOT / "specs").as_posix()
        row = re.search(rf"^\| `{re.escape(name)}` \|(.*)$", table, re.M)
        assert row is not None, f"README footprint table: no row for {name}"
        cells = [c.strip() for c in row[1].split("|")]
        trace = check(load_spec(path))
        (f,) = footprints(trace)
        assert cells[0] == f"{trace.params:,}" and cells[1] == f"{f.weight_bytes:,}", name
        assert cells[3] == f"{f.arena_bytes:,}" and cells[4] == f"{f.ram_bytes:,}", name
        fits = f.flash_bytes < 1024**2 and f.ram_bytes <= 256 * 1024
        assert cells[5].startswith("fits" if fits else "does not"), name


def test_a_spec_may_name_the_device_rows_in_verify_runtimes(tmp_path) -> None:
    spec = tmp_path / "lenet5.yaml"
    text = (ROOT / "specs/lenet5.yaml").read_text(encoding="utf-8")
    spec.write_text(text.replace("verify:\n", "verify:\n  runtimes: [c, 'c[cortex-m4,qemu]']\n", 1))
    assert load_spec(spec).verify.runtimes == ("c", "c[cortex-m4,qemu]")
