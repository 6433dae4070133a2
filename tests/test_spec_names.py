"""Layer names: auto names, and the reserved names kept current against torch itself."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lenetc.errors import SpecError
from lenetc.spec.load import MODULE_ATTRIBUTES, load_spec, parse_spec
from lenetc.spec.yamlsafe import load_yaml_text

ROOT = Path(__file__).resolve().parent.parent


def test_module_attributes_cover_torch_nn_module():
    """A layer named like any public nn.Module attribute would break the generated class."""
    public = {name for name in dir(torch.nn.Module) if not name.startswith("_")}
    instance = {name for name in vars(torch.nn.Module()) if not name.startswith("_")}
    missing = (public | instance) - MODULE_ATTRIBUTES
    assert not missing, f"add to spec.MODULE_ATTRIBUTES: {sorted(missing)}"


def _spec(layers: str):
    text = f"name: t\ninput: {{shape: [1, 8, 8]}}\nlayers:\n{layers}"
    return parse_spec(load_yaml_text(text.encode(), "t.yaml"), "t.yaml", Path("."))


def test_auto_names_count_per_prefix_and_skip_given_ones():
    spec = _spec(
        "  - {type: conv2d, out_channels: 2, kernel_size: 3, name: conv2}\n"
        "  - {type: conv2d, out_channels: 2, kernel_size: 3}\n"
        "  - {type: relu}\n"
        "  - {type: flatten}\n"
        "  - {type: linear, out_features: 3}\n"
    )
    assert [n.name for n in spec.nodes] == ["conv2", "conv1", "relu1", "flatten1", "fc1"]
    assert [n.auto_named for n in spec.nodes] == [False, True, True, True, True]
    assert spec.nodes[1].inputs == ("conv2",)


def test_auto_name_colliding_with_a_given_name_is_skipped():
    spec = _spec(
        "  - {type: conv2d, out_channels: 2, kernel_size: 3}\n"
        "  - {type: conv2d, out_channels: 2, kernel_size: 3, name: conv1}\n"
    )
    assert [n.name for n in spec.nodes] == ["conv2", "conv1"]


@pytest.mark.parametrize("name", ["forward", "training", "to", "cuda", "state_dict", "x", "F"])
def test_reserved_layer_names(name: str):
    with pytest.raises(SpecError, match="would shadow"):
        _spec(f"  - {{type: relu, name: {name}}}\n")


def test_every_spec_in_specs_loads():
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        spec = load_spec(path)
        assert spec.nodes, path
