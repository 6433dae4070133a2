"""Bad specs: every one a clean exit 2 with located, one-line causes, never a traceback.

Golden texts: `lenetc check specs/invalid/<name>.yaml` -> tests/golden/errors/<name>.txt
(regenerate with pytest --update-golden). Hostile inputs that do not belong in the repo (a file
too large, a real billion-laughs bomb, 10,000 levels of nesting) are written to tmp_path here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from lenetc.cli import main
from lenetc.errors import SpecError
from lenetc.spec.load import load_spec

ROOT = Path(__file__).resolve().parent.parent
INVALID = sorted((ROOT / "specs" / "invalid").glob("*.yaml"))
LOCATED = re.compile(r"^\S+\.yaml(:\d+)?: \S")  # file:line: cause


def run_check(path: Path | str, monkeypatch: pytest.MonkeyPatch | None = None):
    return CliRunner().invoke(main, ["check", str(path)], catch_exceptions=False)


def assert_clean_spec_error(result, first_line: str | None = None) -> list[str]:
    """Exit 2, every problem a located line (hints indented under it), no traceback, no stdout."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines, "no message"
    for line in lines:
        assert LOCATED.match(line) or line.startswith("  hint: "), line
    if first_line is not None:
        assert first_line in lines[0], lines[0]
    return lines


def test_at_least_25_broken_specs():
    assert len(INVALID) >= 25


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_broken_spec_golden_error(path: Path, golden, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = run_check(path.relative_to(ROOT))
    assert_clean_spec_error(result)
    golden.check(f"errors/{path.stem}.txt", result.stderr)


# ---- the bad inputs of issue #3, each with the one-line cause it must give ---------------------

CAUSES = {
    "python_tag": "YAML tag !!python/object/apply:os.system is not allowed",
    "alias_bomb": "YAML aliases expand to more than 4,000 values",
    "cyclic_alias": "this YAML alias refers to the block that contains it",
    "alias_error_at_use": "alias_error_at_use.yaml:11: layer conv2 (conv2d): the kernel spans 5",
    "unknown_reference": "layer add1 (add): inputs: no layer above this one is named 'stme'",
    "forward_reference": "inputs: 'bn1' is defined later (line 10)",
    "dangling_branch": "layer branch_b (conv2d): its output is never used",
    "mismatched_add": "bn_b (line 12) gives (16, 8, 8) and stem (line 7) gives (8, 16, 16)",
    "mismatched_cat": "branch1x1 (line 6) gives (8, 8, 8) and branch_pool (line 8) gives (3, 6, 6)",
    "deep_nesting": "the YAML nests deeper than 16 levels",
    "duplicate_key": "duplicate key 'kernel_size' (first on line 8)",
    "not_utf8": "the file is not UTF-8 text (byte 0xe9",
    "not_a_mapping": "the spec must be a mapping",
    "bool_for_int": "kernel_size: expected a positive integer, found true",
    "float_for_int": "kernel_size: expected a positive integer, found 5.0",
    "zero_size": "out_channels: expected an integer from 1 to 65536, found 0",
    "negative_size": "stride: expected a positive integer from 1 to 4096, found -2",
    "absurd_size": "out_features: expected an integer from 1 to 1048576, found 100000000",
    "kernel_too_large": "layer conv4 (conv2d): the kernel spans 3 along height",
    "pool_too_large": "layer pool1 (max_pool2d): the 4 x 4 window does not fit the 3 x 3 input",
    "keyword_name": "name 'class' is a Python keyword",
    "dunder_name": "name '__init__' starts with an underscore",
    "shadow_forward": "name 'forward' would shadow an attribute every torch nn.Module has",
    "duplicate_names": "two layers are named 'features' (lines 6 and 8)",
    "lookalike_name": "has the non-ASCII character 'с' (U+0441)",
    "nan_value": "layer dropout1 (dropout): p: expected a finite number, found .nan",
    "inf_value": "negative_slope: expected a finite number, found .inf",
    "dropout_out_of_range": "p: expected a number from 0 to 1, found 1.5",
    "gelu_option": "approximate: expected one of none, tanh, found 'fast'",
    "unknown_type": "unknown layer type 'maxpool2d'",
    "unknown_key": "unknown key 'kernal_size'",
    "in_features_wrong": "in_features is 400, but its input has 576 features (16 x 6 x 6)",
}


@pytest.mark.parametrize("stem, cause", sorted(CAUSES.items()))
def test_bad_input_gives_its_cause(stem: str, cause: str, monkeypatch):
    monkeypatch.chdir(ROOT)
    lines = assert_clean_spec_error(run_check(f"specs/invalid/{stem}.yaml"), cause)
    assert lines[0].startswith(f"specs/invalid/{stem}.yaml:"), "every cause names file and line"


def test_suggestions_name_the_nearest_known_word(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert "hint: did you mean 'max_pool2d'?" in run_check("specs/invalid/unknown_type.yaml").stderr
    assert "hint: did you mean 'kernel_size'?" in run_check("specs/invalid/unknown_key.yaml").stderr


def test_all_problems_in_one_run(monkeypatch):
    monkeypatch.chdir(ROOT)
    lines = assert_clean_spec_error(run_check("specs/invalid/many_problems.yaml"))
    causes = [line for line in lines if not line.startswith("  hint")]
    assert len(causes) == 6, lines
    assert [int(c.split(":")[1]) for c in causes] == sorted(int(c.split(":")[1]) for c in causes)
    assert any("train.optimizer.lr" in c for c in causes)


def test_the_design_md_example_reads_as_documented(monkeypatch):
    monkeypatch.chdir(ROOT)
    lines = run_check("specs/invalid/in_features_wrong.yaml").stderr.splitlines()
    assert lines == [
        "specs/invalid/in_features_wrong.yaml:13: layer fc1 (linear): in_features is 400, but its "
        "input has 576 features (16 x 6 x 6)",
        "  hint: remove in_features to infer it, or set it to 576",
    ]


# ---- hostile files made on the fly -----------------------------------------------------------


def _write(tmp_path: Path, text: str | bytes, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_no_code_runs_from_a_tag(tmp_path: Path):
    marker = tmp_path / "pwned"
    spec = _write(
        tmp_path,
        f"name: !!python/object/apply:os.system ['touch {marker}']\n"
        "input: {shape: [4]}\nlayers: [{type: relu}]\n",
    )
    assert_clean_spec_error(run_check(spec), "YAML tag !!python/object/apply:os.system")
    assert not marker.exists()


@pytest.mark.parametrize(
    "text, cause",
    [
        ("name: !!python/name:os.system\n", "YAML tag !!python/name:os.system"),
        ("name: !custom x\n", "YAML tag !custom is not allowed"),
        ("name: !!binary aGVsbG8=\n", "YAML tag !!binary is not allowed"),
        ("name: 2024-01-01\n", "'2024-01-01' reads as a YAML timestamp"),
        ("<<: [1]\n", "a YAML merge key (<<) takes a mapping or a list of mappings"),
        ("name: a\x00b\n", "the file holds the control character U+0000"),
        ("name: [unclosed\n", "YAML syntax:"),
        ("", "the spec is empty"),
        ("just text\n", "the spec must be a mapping (name:, input:, layers: ...), found a str"),
        ("? [a]\n: 1\n", "keys must be text, found list"),
        (
            "name: a\ninput: {shape: [1.0e+400]}\nlayers: [{type: relu}]\n",
            "input.shape: expected a positive number of features, found .inf",
        ),
        (
            "name: a\ninput: {shape: [4]}\nlayers: [{type: dropout, p: 1e-5}]\n",
            "p: expected a number, found '1e-5'",
        ),
        (
            "name: a\ninput: {shape: [0]}\nlayers: [{type: relu}]\n",
            "expected a positive number of features from 1 to 16777216, found 0",
        ),
        (
            "name: a\ninput: {shape: [3, 100000, 100000]}\nlayers: [{type: relu}]\n",
            "expected a positive size from 1 to 65536, found 100000",
        ),
        (
            "name: a\ninput: {shape: [4]}\nlayers: [{type: relu}]\n"
            "train: {optimizer: {lr: .nan}}\n",
            "train.optimizer.lr: expected a finite number, found .nan",
        ),
        (
            "name: a\ninput: {shape: [4]}\nlayers: [{type: relu}]\nverify: {atol: -.inf}\n",
            "verify.atol: expected a finite number, found -.inf",
        ),
        ("name: a\ninput: {shape: [yes]}\nlayers: [{type: relu}]\n", "found true"),
        (
            "name: a\ninput: {shape: [4]}\nlayers: [{type: relu, name: 5}]\n",
            "name must be text, found 5",
        ),
        ("name: a\ninput: {shape: [4]}\nlayers: [relu]\n", "layer 1 must be a mapping"),
        ("name: a\ninput: {shape: [4]}\nlayers: [{name: x1}]\n", "layer 1 needs a 'type'"),
        ("name: a\ninput: {shape: [4]}\nlayers: []\n", "layers must be a non-empty list"),
        (
            "name: a\ninput: {shape: [4]}\nlayers: [{type: relu, name: input}]\n",
            "would shadow a name the generated source uses",
        ),
        (
            "name: a\ninput: {shape: [4]}\nlayers: [{type: relu, name: training}]\n",
            "would shadow an attribute every torch nn.Module has",
        ),
        ("name: a\ninput: {shape: [4]}\nlayers: [{type: relu, name: ﬁ}]\n", "non-ASCII"),
        (
            "name: a\nclass_name: torch\ninput: {shape: [4]}\nlayers: [{type: relu}]\n",
            "class_name 'torch' would shadow a name the generated source uses",
        ),
        (
            "name: a\ninput: {shape: [4]}\nlayers: [{type: relu}]\nexport: {onnx: {opset: 7}}\n",
            "export.onnx.opset: 7 is outside the supported range",
        ),
    ],
    ids=lambda v: v[:40] if isinstance(v, str) else None,
)
def test_hostile_text(tmp_path: Path, text: str, cause: str):
    assert_clean_spec_error(run_check(_write(tmp_path, text)), cause)


def test_file_too_large_is_refused_before_reading(tmp_path: Path):
    spec = _write(tmp_path, "# padding\n" * 30_000)
    assert_clean_spec_error(run_check(spec), "more than a spec can be (262,144 bytes)")


def test_billion_laughs(tmp_path: Path):
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    assert_clean_spec_error(run_check(_write(tmp_path, "\n".join(lines))), "aliases")


@pytest.mark.parametrize("depth", [40, 10_000])
def test_deep_nesting(tmp_path: Path, depth: int):
    text = "name: " + "[" * depth + "]" * depth + "\n"
    assert_clean_spec_error(run_check(_write(tmp_path, text)), "nest")


def test_utf16_and_binary_bytes(tmp_path: Path):
    utf16 = _write(tmp_path, "name: a\n".encode("utf-16"), "u16.yaml")
    assert_clean_spec_error(run_check(utf16), "the file is not UTF-8 text (byte 0xff at offset 0)")
    binary = _write(tmp_path, bytes(range(256)), "bin.yaml")
    assert_clean_spec_error(run_check(binary))


def test_missing_spec_is_exit_2(tmp_path: Path):
    assert_clean_spec_error(run_check(tmp_path / "nope.yaml"), "cannot read the spec")


def test_load_spec_raises_spec_error_with_every_problem():
    with pytest.raises(SpecError) as caught:
        load_spec(ROOT / "specs" / "invalid" / "many_problems.yaml")
    assert len(caught.value.problems) == 6
    assert caught.value.exit_code == 2
    assert {p.layer for p in caught.value.problems} >= {"conv1 (conv2d)", "relu1 (relu)"}
