"""Targets (c): ShapeTrace -> the C target, a folder of plain C99 that needs no allocator.

Takes the trace (and, from a build, the dataset's normalization and labels); returns the files of
`c/` as text (render.py): model.h, model.c, main.c and a Makefile. The weights file
(model_weights.h) is written from trained tensors by export/c_weights.py with `weights_header`
(weights.py); `lenetc render --target c` has no weights, so model.c compiles only beside a build's
weights file. No torch import.

One module per job, in the order a render uses them:
- literals.py: C float, hex-float and string literals; the names C reserves.
- fragments.py: each kind's fragment (templates/c/layers/<type>.j2) -> a typed, validated
  `Fragment` (`kernel`, `call`, `alias`, `in_place`, `layout`, `pad_to_lanes`, `scratch`,
  `windowed`, `needs_*`).
- views.py: each node -> `CLayer`, the C literals its fragment prints.
- plan.py: `BufferPlan`, computed once: where each value lives, buffer sizes, the final buffer,
  arena and weight bytes.
- about.py: the model-wide values (`prefix`, `DatasetInfo`, the templates' `m`).
- weights.py: tensors <-> model_weights.h.
- indent.py, render.py: the files: one kernel per kind, a forward function calling them.
"""

from .about import WEIGHTS_FILE, DatasetInfo, model_view, prefix
from .fragments import ContractProblem, Fragment, contract
from .literals import C_RESERVED, c_literal, c_string, hex_float
from .plan import BufferPlan, plan_buffers
from .render import FILES, render_c, write_c
from .views import CLayer, layer_views
from .weights import read_weights, weight_arrays, weights_header

__all__ = [
    "C_RESERVED",
    "FILES",
    "WEIGHTS_FILE",
    "BufferPlan",
    "CLayer",
    "ContractProblem",
    "DatasetInfo",
    "Fragment",
    "c_literal",
    "c_string",
    "contract",
    "hex_float",
    "layer_views",
    "model_view",
    "plan_buffers",
    "prefix",
    "read_weights",
    "render_c",
    "weight_arrays",
    "weights_header",
    "write_c",
]
