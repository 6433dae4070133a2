"""Stage 5, export (C): weights.pt -> the build folder's c/, with the weights as exact C arrays.

Takes the build folder, the ShapeTrace and the dataset's facts (normalization, labels); renders
the C target (targets/c/: model.h, model.c, main.c, Makefile) and writes model_weights.h from
weights.pt itself (the file verify checks), each tensor permuted to the order its layer's loops
read it (the fragment's `layout`) and written as C99 hex floats, exactly. The folder is swapped
in whole (artifacts.atomic_dir). Returns the folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..artifacts import BuildDir, atomic_dir
from ..check.shapes import ShapeTrace
from ..errors import RuntimeFailure
from ..targets.c import WEIGHTS_FILE, DatasetInfo, render_c, weight_arrays, weights_header


def export_c(out: BuildDir, trace: ShapeTrace, data: DatasetInfo | None) -> Path:
    files = render_c(trace, data)
    files[WEIGHTS_FILE] = weights_header(trace, c_arrays(trace, out.weights))
    final = out.c_dir
    with atomic_dir(final) as tmp:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
    return final


def c_arrays(trace: ShapeTrace, weights: Path) -> dict:
    """state_dict key -> (torch's shape, the values in the stored order), for every float tensor."""
    names = weight_arrays(trace)
    state = torch.load(weights, weights_only=True)
    arrays = {}
    for key, tensor in state.items():
        if not tensor.is_floating_point():
            continue  # batch norm's num_batches_tracked: a counter, not a weight
        if key not in names:
            raise RuntimeFailure(
                f"export stage c: weights.pt holds {key}, which no C fragment declares "
                "(its `layout` in templates/c/layers/)"
            )
        _, perm, lanes = names[key]
        value = tensor.detach().cpu().numpy().astype(np.float32)
        stored = np.transpose(value, perm)
        if lanes:  # zeros for the channels a vector holds beyond the layer's own
            pad = [(0, 0)] * (stored.ndim - 1) + [(0, lanes - stored.shape[-1])]
            stored = np.pad(stored, pad)
        arrays[key] = (value.shape, stored.ravel().tolist())
    return arrays
