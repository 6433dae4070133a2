"""Stage 5, export, golden I/O: the torch module's own answers, for other runtimes to check against.

Takes the trained module, the spec and the held-out test samples; returns a Bundle of inputs
(real held-out samples first, then seeded random ones, all already normalized: exactly what the
model is fed), the module's float32 outputs and the true labels (-1 for random rows). Writes it
twice, atomically:

  io.npz            input, output, label  (numpy; np.load)
  test_data_set_0/  input_0.pb, output_0.pb: onnx TensorProtos named after the graph's input
                    and output, the layout onnxruntime's onnx_test_runner and ONNX's tests read
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..artifacts import BuildDir, atomic_dir, write_with
from ..spec.load import Spec

N_REAL = 16
N_RANDOM = 8
RANDOM_SEED_OFFSET = 1  # random rows use seed + 1, so they differ from verify's seed-`seed` rows


@dataclass(frozen=True)
class Bundle:
    input: np.ndarray  # float32, (N, *input_shape)
    output: np.ndarray  # float32, (N, *output_shape)
    label: np.ndarray  # int64, (N,); -1 where the row is random


def make_bundle(
    model: nn.Module,
    spec: Spec,
    x_test: np.ndarray,
    y_test: np.ndarray,
    batch: int | None = None,
) -> Bundle:
    """N_REAL held-out rows then N_RANDOM seeded ones; `batch` cuts it for a static batch axis."""
    real = np.asarray(x_test[:N_REAL], dtype=np.float32).reshape((-1,) + spec.input_shape)
    labels = np.asarray(y_test[: len(real)], dtype=np.int64)
    rng = np.random.default_rng(spec.train.seed + RANDOM_SEED_OFFSET)
    noise = rng.standard_normal((N_RANDOM,) + spec.input_shape).astype(np.float32)
    x = np.concatenate([real, noise])
    y = np.concatenate([labels, np.full(N_RANDOM, -1, dtype=np.int64)])
    if batch is not None:
        x, y = x[:batch], y[:batch]
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(np.ascontiguousarray(x))).numpy().astype(np.float32)
    return Bundle(x, out, y)


def write_bundle(bundle: Bundle, out: BuildDir, input_name: str, output_name: str) -> None:
    from onnx import numpy_helper

    def save_npz(path) -> None:
        with open(path, "wb") as handle:
            np.savez(handle, input=bundle.input, output=bundle.output, label=bundle.label)

    write_with(out.io_npz, save_npz)
    with atomic_dir(out.test_data) as folder:
        for file, array, name in (
            ("input_0.pb", bundle.input, input_name),
            ("output_0.pb", bundle.output, output_name),
        ):
            (folder / file).write_bytes(numpy_helper.from_array(array, name).SerializeToString())


def read_test_data(folder) -> tuple[np.ndarray, np.ndarray]:
    """(input, output) arrays back from a test_data_set_0/ folder."""
    from onnx import TensorProto, numpy_helper

    arrays = []
    for file in ("input_0.pb", "output_0.pb"):
        tensor = TensorProto()
        tensor.ParseFromString((folder / file).read_bytes())
        arrays.append(numpy_helper.to_array(tensor))
    return arrays[0], arrays[1]
