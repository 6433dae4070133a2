"""Limits a user can set, and what the spec language v2 accepts: check reports any size exactly;
build applies a memory budget (the machine's, or --memory-budget) with a way out; YAML anchors,
aliases and merge keys reuse blocks, with lines at the use; NaN names its key path."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from lenetc.check.memory import Budget, default_budget, estimate, machine_memory, parse_size
from lenetc.check.memory import require as require_memory
from lenetc.check.shapes import check
from lenetc.cli import main
from lenetc.errors import RuntimeFailure
from lenetc.spec.load import load_spec

BIG = "name: big\ninput: {shape: [65536]}\nlayers:\n  - {type: linear, out_features: 1024}\n"


def _write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_check_reports_any_size_exactly(tmp_path: Path):
    """67 million parameters and a 67-million-element activation: check allocates nothing."""
    trace = check(load_spec(_write(tmp_path, BIG)))
    assert trace.params == 65536 * 1024 + 1024 == 67_109_888
    wide = "name: wide\ninput: {shape: [3, 128, 128]}\nlayers:\n"
    wide += "  - {type: conv2d, out_channels: 4096, kernel_size: 3, padding: same}\n"
    assert check(load_spec(_write(tmp_path, wide, "wide.yaml"))).output_shape == (4096, 128, 128)


@pytest.mark.parametrize(
    "text, value",
    [("8GB", 8 * 10**9), ("512MiB", 512 * 2**20), ("1.5 gb", 1_500_000_000), ("1000", 1000)],
)
def test_memory_budget_sizes(text: str, value: int):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "8 GBs", "-1GB", "lots"])
def test_memory_budget_refuses_what_is_not_a_size(text: str):
    with pytest.raises(ValueError, match="expected a size such as 8GB"):
        parse_size(text)


def test_memory_estimate_counts_weights_activations_and_the_reference(tmp_path: Path):
    spec = load_spec(_write(tmp_path, BIG))
    need = estimate(check(spec), spec.train, spec.verify)
    # sgd with momentum: weights, gradients, momentum; float32
    assert need.weights == 4 * 67_109_888 * 3
    # input and fc1's output, kept with their gradients at batch 64; float64 at verify's batch 64
    assert need.training == 4 * 2 * (65536 + 1024) * 64
    assert need.reference == 8 * (65536 + 1024) * 64
    assert need.total == need.weights + max(need.training, need.reference)


def test_default_budget_is_three_quarters_of_the_machine():
    memory = machine_memory()
    budget = default_budget()
    assert memory is not None and memory > 0
    assert budget.bytes == int(memory * 0.75)
    assert "3/4 of this machine's" in budget.source


def test_build_over_budget_exits_1_before_training_and_says_how_to_raise_it(tmp_path: Path):
    spec = _write(tmp_path, BIG)
    result = CliRunner().invoke(
        main, ["build", str(spec), "-o", str(tmp_path / "out"), "--memory-budget", "100MB"]
    )
    assert result.exit_code == 1, result.output
    first, hint = result.stderr.splitlines()
    assert first.startswith(f"error: {spec}:4: the build needs about 839 MB of memory")
    assert "more than the memory budget of 100 MB (set with --memory-budget 100MB)" in first
    assert hint == (
        "  hint: raise the budget with `lenetc build --memory-budget 2GB` if the machine has it, "
        "or lower train.batch_size"
    )
    assert not (tmp_path / "out").exists(), "nothing is written before the budget is checked"


def test_a_raised_budget_lets_the_estimate_pass(tmp_path: Path):
    spec = load_spec(_write(tmp_path, BIG))
    require_memory(check(spec), spec.train, spec.verify, Budget(10**10, "test"))
    with pytest.raises(RuntimeFailure):
        require_memory(check(spec), spec.train, spec.verify, Budget(10**8, "test"))


def test_bad_memory_budget_option_is_a_usage_error(tmp_path: Path):
    result = CliRunner().invoke(main, ["build", str(_write(tmp_path, BIG)), "--memory-budget", "x"])
    assert result.exit_code == 2
    assert "--memory-budget: expected a size such as 8GB" in result.stderr


# ---- YAML anchors, aliases, merge keys ----------------------------------------------------------

WRITTEN_OUT = """name: net
input: {shape: [1, 8, 8]}
layers:
  - {type: conv2d, out_channels: 4, kernel_size: 3, padding: 1}
  - {type: relu}
  - {type: conv2d, out_channels: 4, kernel_size: 3, padding: 1}
  - {type: relu}
  - {type: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - {type: flatten}
  - {type: linear, out_features: 10}
"""

ALIASED = """name: net
input: {shape: [1, 8, 8]}
blocks:
  conv: &conv {type: conv2d, out_channels: 4, kernel_size: 3, padding: 1}
  stage: &stage [*conv, {type: relu}]
layers:
  - *stage
  - *stage
  - {<<: *conv, out_channels: 8}
  - [{type: flatten}, {type: linear, out_features: 10}]
"""


def test_aliases_load_to_the_same_network_as_the_written_out_spec(tmp_path: Path):
    plain = load_spec(_write(tmp_path, WRITTEN_OUT, "plain.yaml"))
    aliased = load_spec(_write(tmp_path, ALIASED, "aliased.yaml"))
    assert [(n.name, n.type, dict(n.args), n.inputs) for n in plain.nodes] == [
        (n.name, n.type, dict(n.args), n.inputs) for n in aliased.nodes
    ]
    # every layer that an alias expands to carries the line of the alias's use
    assert [n.line for n in aliased.nodes] == [7, 7, 8, 8, 9, 10, 10]
    assert aliased.nodes[4].key_lines["out_channels"] == 9  # written at the use
    assert aliased.nodes[4].key_lines["kernel_size"] == 9  # merged from *conv


def test_error_names_its_key_path_in_every_section(tmp_path: Path):
    text = WRITTEN_OUT + "train:\n  optimizer: {lr: .nan}\nverify: {atol: .inf}\n"
    result = CliRunner().invoke(main, ["check", str(_write(tmp_path, text))])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if not line.startswith("  hint")]
    assert lines == [
        f"{tmp_path / 'spec.yaml'}:12: train.optimizer.lr: expected a finite number, found .nan",
        f"{tmp_path / 'spec.yaml'}:13: verify.atol: expected a finite number, found .inf",
    ]
