"""What model.onnx says about itself: the metadata_props a downstream program needs to feed it.

Stage 5 (export) calls `describe` with the spec and the dataset's facts and writes the returned
string map into the ONNX file; `predict` (and any other program) reads it back with `read`, from
onnxruntime's `get_modelmeta().custom_metadata_map` alone. No torch, no onnx import here: the
ONNX file must stand on its own, and so must the code that reads it.

Values are strings (ONNX's StringStringEntryProto); lists are JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import RuntimeFailure

# Every key export writes; tests check this exact set, docs/readme-export.md lists them.
KEYS = (
    "lenetc_version",
    "spec_name",
    "spec_sha256",
    "dataset",
    "input_name",
    "input_layout",
    "input_shape",
    "input_dtype",
    "input_range",
    "normalization_mean",
    "normalization_std",
    "normalization",
    "output_name",
    "output_kind",
    "class_labels",
)

LAYOUTS = {1: "NC", 2: "NCL", 3: "NCHW"}  # by the rank of one sample, batch omitted
OUTPUT_KINDS = {"softmax": "probabilities", "log_softmax": "log_probabilities"}
NORMALIZATION_RULE = "x = (raw - mean[c]) / std[c] for each channel c (feature, for NC input)"


@dataclass(frozen=True)
class ModelInfo:
    """metadata_props, parsed: how to turn raw samples into the model's input, and its output."""

    input_name: str
    input_shape: tuple[int | None, ...]  # None for a dynamic batch axis
    input_layout: str
    input_range: tuple[float, float]  # raw values of the training split, before normalization
    mean: tuple[float, ...]
    std: tuple[float, ...]
    output_name: str
    output_kind: str  # logits | probabilities | log_probabilities
    labels: tuple[str, ...]
    dataset: str
    spec_name: str
    spec_sha256: str
    lenetc_version: str

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.input_shape[1:])


def describe(
    *,
    lenetc_version: str,
    spec_name: str,
    spec_sha256: str,
    dataset: str,
    input_name: str,
    sample_shape: Sequence[int],
    dynamic_batch: bool,
    static_batch: int,
    input_range: tuple[float, float],
    mean: Sequence[float],
    std: Sequence[float],
    output_name: str,
    last_layer_type: str,
    labels: Sequence[str],
) -> dict[str, str]:
    """The metadata_props for one export, in KEYS order."""
    if len(mean) != len(std) or len(mean) != sample_shape[0]:
        raise RuntimeFailure(
            f"export stage onnx-metadata: normalization has {len(mean)} means and {len(std)} "
            f"stds, but the input has {sample_shape[0]} channels"
        )
    batch: str | int = "N" if dynamic_batch else static_batch
    meta = {
        "lenetc_version": lenetc_version,
        "spec_name": spec_name,
        "spec_sha256": spec_sha256,
        "dataset": dataset,
        "input_name": input_name,
        "input_layout": LAYOUTS.get(len(sample_shape), "N" + "C" * len(sample_shape)),
        "input_shape": json.dumps([batch, *sample_shape]),
        "input_dtype": "float32",
        "input_range": json.dumps([_num(v) for v in input_range]),
        "normalization_mean": json.dumps([_num(v) for v in mean]),
        "normalization_std": json.dumps([_num(v) for v in std]),
        "normalization": NORMALIZATION_RULE,
        "output_name": output_name,
        "output_kind": OUTPUT_KINDS.get(last_layer_type, "logits"),
        "class_labels": json.dumps(list(labels)),
    }
    assert tuple(meta) == KEYS
    return meta


def read(props: Mapping[str, str], source: str = "model.onnx") -> ModelInfo:
    """Parse metadata_props; a missing or malformed key is a RuntimeFailure naming it."""
    missing = [k for k in KEYS if k not in props]
    if missing:
        raise RuntimeFailure(
            f"{source} has no lenetc metadata ({', '.join(missing)} missing); "
            "was it exported by lenetc?"
        )
    try:
        shape = tuple(None if d == "N" else int(d) for d in json.loads(props["input_shape"]))
        lo, hi = (float(v) for v in json.loads(props["input_range"]))
        info = ModelInfo(
            input_name=props["input_name"],
            input_shape=shape,
            input_layout=props["input_layout"],
            input_range=(lo, hi),
            mean=tuple(float(v) for v in json.loads(props["normalization_mean"])),
            std=tuple(float(v) for v in json.loads(props["normalization_std"])),
            output_name=props["output_name"],
            output_kind=props["output_kind"],
            labels=tuple(str(v) for v in json.loads(props["class_labels"])),
            dataset=props["dataset"],
            spec_name=props["spec_name"],
            spec_sha256=props["spec_sha256"],
            lenetc_version=props["lenetc_version"],
        )
    except (ValueError, TypeError) as exc:
        raise RuntimeFailure(f"{source} has malformed lenetc metadata: {exc}") from None
    if len(info.mean) != info.sample_shape[0] or len(info.std) != len(info.mean):
        raise RuntimeFailure(
            f"{source}: normalization has {len(info.mean)} means for "
            f"{info.sample_shape[0]} input channels"
        )
    return info


def _num(value: float) -> float:
    """Round to float32 precision (9 significant digits) so the JSON stays short and exact."""
    return float(f"{float(value):.9g}")
