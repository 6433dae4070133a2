"""Targets (c, weights): trained tensors <-> model_weights.h. Each array is written as exact C99
hex floats in the order its fragment's loops read it (`layout`, lane padding), under a comment
that says where it came from; `read_weights` reads that comment and the values back. No torch
import (export/c_weights.py hands in the tensors as lists).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ...check.shapes import ShapeTrace
from ..templates import environment
from .about import WEIGHTS_FILE, model_view
from .fragments import TARGET, contract
from .literals import hex_float, tuple_text
from .views import CLayer, layer_views

__all__ = ["WEIGHTS_FILE", "read_weights", "weight_arrays", "weights_header"]


def weight_arrays(
    trace: ShapeTrace, views: Sequence[CLayer] | None = None
) -> dict[str, tuple[str, tuple[int, ...], int]]:
    """Per state_dict key of a layer with parameters: its C array name, the permutation of
    torch's axes it is stored in (the fragment's `layout`), and the length its last stored axis
    is padded to with zeros (the fragment's `pad_to_lanes`; 0: none)."""
    out: dict[str, tuple[str, tuple[int, ...], int]] = {}
    for view in views if views is not None else layer_views(trace):
        fragment = contract(view.kind)
        for param, perm in fragment.layout.items():
            lanes = int(view.v.get("pad_lanes", "0")) if param in fragment.pad_to_lanes else 0
            out[f"{view.layer}.{param}"] = (view.p[param], perm, lanes)
    return out


def weights_header(
    trace: ShapeTrace, arrays: Mapping[str, tuple[tuple[int, ...], Sequence[float]]]
) -> str:
    """model_weights.h from the trained tensors: state_dict key -> (torch's shape, its values
    already in the stored order and padded, see `weight_arrays`). Each array opens with a comment
    that says where it came from, which `read_weights` reads back."""
    names = weight_arrays(trace)
    blocks = []
    for key, (shape, values) in arrays.items():
        cname, perm, lanes = names[key]
        body = [
            ", ".join(hex_float(x) for x in values[start : start + 4]) + ","
            for start in range(0, len(values), 4)
        ]
        stored = tuple(shape[i] for i in perm)
        if lanes:
            stored = stored[:-1] + (lanes,)
        blocks.append(
            f"/* {key}: torch's shape {tuple_text(shape)}, stored as {tuple_text(stored)} "
            f"(axes {tuple_text(perm)}) */\n"
            f"static const float {cname}[{len(values)}] = {{\n    " + "\n    ".join(body) + "\n};"
        )
    model = model_view(trace, None)
    return environment().get_template(f"{TARGET}/{WEIGHTS_FILE}.j2").render(m=model, blocks=blocks)


_ARRAY = re.compile(
    r"/\* (?P<key>\S+): torch's shape \((?P<shape>[\d, ]*)\), stored as \((?P<stored>[\d, ]*)\) "
    r"\(axes \((?P<perm>[\d, ]*)\)\) \*/\nstatic const float \w+\[\d+\] = \{(?P<body>[^}]*)\};"
)


def read_weights(text: str) -> dict[str, tuple[tuple[int, ...], ...]]:
    """model_weights.h back to state_dict key -> (torch's shape, the stored axes, the stored
    shape, the values)."""
    out = {}
    for m in _ARRAY.finditer(text):
        shape, perm, stored = (
            tuple(int(d) for d in m[k].replace(" ", "").split(",") if d)
            for k in ("shape", "perm", "stored")
        )
        values = tuple(float.fromhex(t.strip()[:-1]) for t in m["body"].split(",") if t.strip())
        out[m["key"]] = (shape, perm, stored, values)
    return out
