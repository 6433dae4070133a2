"""Stage 4a, data: a DatasetConfig and the spec's input shape -> normalized train/val/test arrays.

Takes the dataset section, the input shape (batch omitted) and the class count the model outputs;
returns a Dataset of float32 arrays in (N, *input_shape), int64 labels, and the normalization
statistics computed on the training split (saved with the model). Sample shapes that cannot meet
the spec's input, and class counts that do not fit the output, are RuntimeFailure / SpecError.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import DatasetConfig
from .errors import Location, Problem, RuntimeFailure, SpecError


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: tuple[float, ...]  # per channel (per feature for 1-D input), of the raw training split
    std: tuple[float, ...]
    labels: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.labels)


def load_dataset(
    cfg: DatasetConfig,
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    seed: int,
    validation_split: float,
    spec_path: str = "spec",
) -> Dataset:
    if cfg.name == "digits":
        x, y, labels = _digits()
    elif cfg.name == "synthetic":
        x, y, labels = _synthetic(cfg, input_shape, seed)
    else:
        raise RuntimeFailure(f"dataset {cfg.name} is not supported yet")
    if len(labels) > num_classes:
        raise SpecError(
            Problem(
                f"dataset {cfg.name} has {len(labels)} classes, but the model outputs {num_classes}",
                Location(spec_path, cfg.line),
                hint=f"make the last layer out_features: {len(labels)}",
            )
        )
    x = fit_samples(x, input_shape, cfg.fit, cfg.name)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_test = max(1, int(round(len(x) * cfg.test_split)))
    n_val = int(round((len(x) - n_test) * validation_split))
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    axes = (0,) + tuple(range(2, x.ndim)) if x.ndim > 2 else (0,)
    mean = x[train].mean(axis=axes, dtype=np.float64)
    std = x[train].std(axis=axes, dtype=np.float64)
    std = np.where(std < 1e-8, 1.0, std)

    def norm(a: np.ndarray) -> np.ndarray:
        shape = (1, -1) + (1,) * (a.ndim - 2)
        return ((a - mean.reshape(shape)) / std.reshape(shape)).astype(np.float32)

    return Dataset(
        cfg.name,
        norm(x[train]),
        y[train],
        norm(x[val]),
        y[val],
        norm(x[test]),
        y[test],
        tuple(float(m) for m in mean.ravel()),
        tuple(float(s) for s in std.ravel()),
        labels,
    )


def _digits() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    from sklearn.datasets import load_digits  # shipped inside scikit-learn: no download

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]  # (1797, 1, 8, 8) in [0, 1]
    return x, bunch.target.astype(np.int64), tuple(str(t) for t in bunch.target_names)


def _synthetic(cfg: DatasetConfig, shape: tuple[int, ...], seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, cfg.num_classes, size=cfg.samples).astype(np.int64)
    centers = rng.normal(size=(cfg.num_classes,) + shape).astype(np.float32)
    x = centers[y] + 0.5 * rng.normal(size=(cfg.samples,) + shape).astype(np.float32)
    return x, y, tuple(str(i) for i in range(cfg.num_classes))


def fit_samples(x: np.ndarray, shape: tuple[int, ...], fit: str, name: str) -> np.ndarray:
    """Bring (N, C, H, W) samples to the spec's input shape: resize (bilinear), pad, or none."""
    target = tuple(shape)
    if x.shape[1:] == target:
        return x
    if len(target) == 1 and fit != "none":
        flat = x.reshape(len(x), -1)
        if flat.shape[1] == target[0]:
            return flat
    if len(target) == 3 and x.ndim == 4 and fit == "resize":
        import torch
        import torch.nn.functional as F

        t = torch.from_numpy(x)
        if t.shape[1] != target[0]:
            if t.shape[1] != 1:
                raise RuntimeFailure(
                    f"dataset {name} has {t.shape[1]} channels; the spec's input has {target[0]}"
                )
            t = t.expand(-1, target[0], -1, -1)
        t = F.interpolate(t, size=target[1:], mode="bilinear", align_corners=False)
        return t.numpy().astype(np.float32)
    raise RuntimeFailure(
        f"dataset {name} has samples of shape {tuple(x.shape[1:])}, which cannot become the "
        f"spec's input {target} with fit: {fit}"
    )
