"""Stage 4a, data: a DatasetConfig and the spec's input shape -> normalized train/val/test arrays.

Takes the dataset section, the input shape (batch omitted), the class count the model outputs, a
seed and the folder that relative paths start from; returns a Dataset of float32 arrays shaped
(N, *input_shape), int64 labels, and the per-channel normalization statistics of the raw training
split (saved with the model). Files that are missing or malformed, or hold a sample with NaN or
infinity (named by its index), are RuntimeFailure (exit 1);
samples that cannot take the spec's input shape, or labels the model cannot output, are SpecError
pointing at the dataset's line (exit 2). All of it happens before any training starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artifacts import not_a_regular_file
from ..errors import Location, Problem, RuntimeFailure, SpecError
from ..spec.config import DatasetConfig
from .idx import map_idx, read_idx
from .npy import Mapped, map_npy
from .streaming import Rows, normalize, stream_stats


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
    labels: tuple[str, ...]  # one per model output
    # raw min and max of the training split, when the data is streamed (export needs it and
    # cannot read a whole streamed split); None: export takes it from x_train
    input_range: tuple[float, float] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class _Raw:
    """Samples as the source gives them, before fitting, splitting and normalizing; x is a
    `Mapped` file when it is read batch by batch (npy, uncompressed idx)."""

    x: np.ndarray | Mapped
    y: np.ndarray
    x_test: np.ndarray | Mapped | None = None  # the source's own test split, when it has one
    y_test: np.ndarray | None = None
    labels: tuple[str, ...] = ()  # class names the source carries, if any
    classes: int | None = None  # the class count the source declares (digits, synthetic)


def load_dataset(
    cfg: DatasetConfig,
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    seed: int,
    validation_split: float,
    spec_path: str = "spec",
    base_dir: Path = Path("."),
) -> Dataset:
    at = Location(spec_path, cfg.line)
    _refuse_special_files(cfg, base_dir)
    if cfg.name == "digits":
        raw = _digits()
    elif cfg.name == "synthetic":
        raw = _synthetic(cfg, input_shape, cfg.num_classes or num_classes, seed)
    elif cfg.name == "idx":
        raw = _idx(cfg, base_dir)
    elif cfg.name == "npy":
        raw = _npy(cfg, base_dir)
    else:
        raw = _npz(Path(base_dir, cfg.path or ""))
    _check_classes(cfg.name, raw, num_classes, at)
    read, n = _reader(raw.x, input_shape, cfg, at)
    rng = np.random.default_rng(seed)
    if raw.x_test is None:
        order = rng.permutation(n)
        n_test = max(1, int(round(n * cfg.test_split)))
        test, rest = order[:n_test], order[n_test:]
        read_test, y_test = read, raw.y[test]
    else:
        rest = rng.permutation(n)
        read_test, n_tests = _reader(raw.x_test, input_shape, cfg, at)
        test, y_test = np.arange(n_tests), raw.y_test
    n_val = int(round(len(rest) * validation_split))
    val, train = rest[:n_val], rest[n_val:]
    if len(train) == 0:
        raise RuntimeFailure(f"dataset {cfg.name} has {n} samples: none left to train on")
    shape = tuple(input_shape)
    # one pass, chunk by chunk, for every source alike: the same data gives the same bits
    source = str(cfg.x or cfg.train_images or cfg.path or f"dataset {cfg.name}")
    mean, std, input_range = stream_stats(read, train, shape, source)
    labels = raw.labels + tuple(str(i) for i in range(len(raw.labels), num_classes))
    streamed = [a for a in (raw.x, raw.x_test) if isinstance(a, Mapped)]
    if streamed:  # read batch by batch, never loaded whole
        ident = "|".join(a.identity() for a in streamed)
        test_source = str(cfg.x_test or cfg.test_images or source)
        x_train = Rows(read, train, shape, mean, std, ident, source)
        x_val = Rows(read, val, shape, mean, std, ident, source)
        x_test = Rows(read_test, test, shape, mean, std, ident, test_source)
    else:
        x_train = normalize(read(train), mean, std)
        x_val = normalize(read(val), mean, std)
        x_test = normalize(read_test(test), mean, std)
        input_range = None  # export derives it from the arrays, as it always has
    return Dataset(
        cfg.name,
        x_train,
        raw.y[train],
        x_val,
        raw.y[val],
        x_test,
        y_test,
        tuple(float(m) for m in mean.ravel()),
        tuple(float(s) for s in std.ravel()),
        labels[:num_classes],
        input_range,
    )


_PATH_KEYS = ("path", "x", "y", "x_test", "y_test", "train_images", "train_labels",
              "test_images", "test_labels")  # fmt: skip


def _refuse_special_files(cfg: DatasetConfig, base: Path) -> None:
    """A FIFO, a device or a socket as a dataset file: one line, before any open() (a FIFO with
    no writer blocks open forever; /dev/zero never ends). Missing files are each reader's to say."""
    for key in _PATH_KEYS:
        value = getattr(cfg, key, None)
        if value is None:
            continue
        path = Path(base, value)
        why = not_a_regular_file(path)
        if why is not None and why != "no such file" and not why.startswith("is a folder"):
            raise RuntimeFailure(f"dataset {cfg.name} {key} {path}: {why}")


def _reader(x, shape: tuple[int, ...], cfg: DatasetConfig, at: Location):
    """(rows -> fitted float32 samples, sample count). In memory, samples are fitted once, here;
    a mapped file is fitted batch by batch, and its first row now, so that a shape problem is
    found before training."""
    if not isinstance(x, Mapped):
        fitted = fit_samples(x, shape, cfg.fit, cfg.name, at)
        return (lambda rows: fitted[rows]), len(fitted)
    read = _MappedReader(x, tuple(shape), cfg.fit, cfg.name, at)
    read(np.arange(1))
    return read, len(x)


@dataclass(frozen=True)
class _MappedReader:
    """rows -> fitted float32 samples of a mapped file; picklable (as the file's path), so that
    DataLoader workers can read under any start method, not only fork."""

    source: Mapped
    shape: tuple[int, ...]
    fit: str
    name: str
    at: Location

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        return fit_samples(_to_float(self.source[rows]), self.shape, self.fit, self.name, self.at)


def _check_classes(name: str, raw: _Raw, outputs: int, at: Location) -> None:
    ys = [raw.y] if raw.y_test is None else [raw.y, raw.y_test]
    lowest = min(int(y.min()) for y in ys)
    found = max(int(y.max()) for y in ys) + 1
    if lowest < 0:
        raise RuntimeFailure(f"dataset {name} has a negative label ({lowest}); labels are 0 to K-1")
    # Sources that declare their class count must match exactly; a file's labels may simply not
    # reach the model's last class, but never go beyond it.
    declared = raw.classes or len(raw.labels) or None
    classes = max(found, declared or 0)
    if classes > outputs or (declared is not None and declared != outputs):
        raise SpecError(
            Problem(
                f"dataset {name} has {classes} classes, but the model outputs {outputs}",
                at,
                hint=f"make the last layer out_features: {classes}",
            )
        )


def _digits() -> _Raw:
    from sklearn.datasets import load_digits  # shipped inside scikit-learn: no download

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]  # (1797, 1, 8, 8) in [0, 1]
    labels = tuple(str(t) for t in bunch.target_names)
    return _Raw(x, bunch.target.astype(np.int64), labels=labels, classes=len(labels))


def _synthetic(cfg: DatasetConfig, shape: tuple[int, ...], classes: int, seed: int) -> _Raw:
    """One Gaussian blob per class: learnable, so a loss that falls proves training works."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=cfg.samples).astype(np.int64)
    centers = rng.normal(size=(classes,) + shape).astype(np.float32)
    x = centers[y] + 0.5 * rng.normal(size=(cfg.samples,) + shape).astype(np.float32)
    return _Raw(x, y, classes=classes)


def _idx(cfg: DatasetConfig, base: Path) -> _Raw:
    def images(key: str) -> np.ndarray | Mapped:
        path = Path(base, getattr(cfg, key))
        found = map_idx(path, f"{key.replace('_', ' ')}")
        if isinstance(found, Mapped):  # uncompressed: streamed from the file, never loaded
            return _check_mapped(found, path)
        return _as_float(found, path)

    def labels(key: str, n: int, images_key: str) -> np.ndarray:
        path = Path(base, getattr(cfg, key))
        return _as_labels(read_idx(path, key.replace("_", " ")), n, path, images_key)

    x = images("train_images")
    y = labels("train_labels", len(x), "train_images")
    if cfg.test_images is None:
        return _Raw(x, y)
    x_test = images("test_images")
    return _Raw(x, y, x_test, labels("test_labels", len(x_test), "test_images"))


def _npz(path: Path) -> _Raw:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise RuntimeFailure(f"npz file {path}: no such file") from None
    except Exception as exc:  # np.load raises many types for a file that is not an .npz
        raise RuntimeFailure(f"npz file {path}: not a readable .npz archive ({exc})") from None
    for key in ("x", "y"):
        if key not in arrays:
            found = ", ".join(sorted(arrays)) or "none"
            raise RuntimeFailure(f"npz file {path}: has no array '{key}' (arrays found: {found})")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise RuntimeFailure(f"npz file {path}: has only one of x_test and y_test; give both")
    x = _as_float(arrays["x"], path, "x")
    y = _as_labels(arrays["y"], len(x), path, "x", "y")
    x_test = y_test = None
    if "x_test" in arrays:
        x_test = _as_float(arrays["x_test"], path, "x_test")
        y_test = _as_labels(arrays["y_test"], len(x_test), path, "x_test", "y_test")
    names = arrays.get("labels")
    labels = tuple(str(s) for s in names.ravel()) if names is not None else ()
    return _Raw(x, y, x_test, y_test, labels=labels, classes=len(labels) or None)


def _npy(cfg: DatasetConfig, base: Path) -> _Raw:
    """Inputs and labels as .npy files: the inputs memory-mapped, the labels (small) in memory."""

    def pair(x_key: str, y_key: str) -> tuple[Mapped, np.ndarray]:
        x_path, y_path = Path(base, getattr(cfg, x_key)), Path(base, getattr(cfg, y_key))
        x = _check_mapped(map_npy(x_path, f"npy {x_key}"), x_path, x_key)
        y = map_npy(y_path, f"npy {y_key}")
        return x, _as_labels(y[...], len(x), y_path, x_key, y_key)

    x, y = pair("x", "y")
    if cfg.x_test is None:
        return _Raw(x, y)
    return _Raw(x, y, *pair("x_test", "y_test"))


def _check_mapped(m: Mapped, path: Path, key: str = "images") -> Mapped:
    if m.ndim < 2 or len(m) == 0:
        raise RuntimeFailure(f"{path}: {key} must be (N, ...) with N > 0, found shape {m.shape}")
    return m


def _to_float(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:  # 8-bit pixels: scale to [0, 1], as image files are read
        return a.astype(np.float32) / 255.0
    with np.errstate(over="ignore"):  # beyond float32 -> inf, refused with its place (streaming)
        return a.astype(np.float32)


def _as_float(a: np.ndarray, path: Path, key: str = "images") -> np.ndarray:
    if a.dtype.kind not in "uifb":
        raise RuntimeFailure(f"{path}: {key} must be numbers, found dtype {a.dtype}")
    if a.ndim < 2 or len(a) == 0:
        raise RuntimeFailure(f"{path}: {key} must be (N, ...) with N > 0, found shape {a.shape}")
    if a.dtype == np.uint8:  # 8-bit pixels: scale to [0, 1], as image files are read
        return a.astype(np.float32) / 255.0
    with np.errstate(over="ignore"):
        x = a.astype(np.float32)
    _check_finite(x, a, path, key)
    return x


def _check_finite(x: np.ndarray, source: np.ndarray, path: Path, key: str) -> None:
    """Refuse NaN and infinity (also finite values past float32's range) before any training."""
    bad = ~np.isfinite(x.reshape(len(x), -1))
    if not bad.any():
        return
    rows = np.flatnonzero(bad.any(axis=1))
    i = int(rows[0])
    where = tuple(int(j) for j in np.unravel_index(int(np.argmax(bad[i])), x.shape[1:]))
    value = source[i][where]
    what = f"{value}" if not np.isfinite(value) else f"{value}, beyond float32"
    raise RuntimeFailure(
        f"{path}: {key}[{i}] holds {what} at {list(where)} ({len(rows)} of {len(x)} samples "
        "have such values); remove or repair those samples"
    )


def _as_labels(
    a: np.ndarray, n: int, path: Path, images_key: str, key: str = "labels"
) -> np.ndarray:
    if a.dtype.kind not in "ui":
        raise RuntimeFailure(f"{path}: {key} must be integer class indices, found dtype {a.dtype}")
    if a.ndim != 1 or len(a) != n:
        raise RuntimeFailure(
            f"{path}: {key} must be {n} labels, one per sample of {images_key}, "
            f"found shape {a.shape}"
        )
    return a.astype(np.int64)


def fit_samples(
    x: np.ndarray, shape: tuple[int, ...], fit: str, name: str, at: Location
) -> np.ndarray:
    """Bring samples to the spec's input shape: resize (bilinear), pad (centered zeros), or none."""
    target = tuple(shape)
    if x.shape[1:] == target:
        return x
    if (
        fit != "none"
        and int(np.prod(x.shape[1:])) == int(np.prod(target))
        and (len(target) == 1 or x.ndim == 2)
    ):
        return x.reshape((len(x),) + target)  # (N, 8, 8) <-> (N, 64): flatten or unflatten
    if len(target) == 3 and x.ndim == 3:
        x = x[:, None]  # (N, H, W) grayscale, as MNIST stores it
    found = tuple(x.shape[1:])

    def fail(why: str, hint: str) -> SpecError:
        return SpecError(
            Problem(
                f"dataset {name} has samples of shape {found}; {why} the spec's input "
                f"{target} with fit: {fit}",
                at,
                hint=hint,
            )
        )

    if len(target) != 3 or x.ndim != 4 or fit == "none":
        if x.shape[1:] == target:
            return x
        raise fail("they are not", "set fit: resize or fit: pad, or change input.shape")
    if found[0] != target[0]:
        if found[0] != 1:
            raise fail("their channels do not match", f"set input.shape to [{found[0]}, ...]")
        x = np.repeat(x, target[0], axis=1)  # grayscale into a multi-channel input
    if fit == "pad":
        (h, w), (th, tw) = x.shape[2:], target[1:]
        if h > th or w > tw:
            raise fail("padding cannot shrink them to", "use fit: resize")
        top, left = (th - h) // 2, (tw - w) // 2  # centered; an odd extra pixel goes last
        out = np.zeros(x.shape[:2] + (th, tw), x.dtype)  # np.pad's result, without its overhead
        out[:, :, top : top + h, left : left + w] = x
        return out
    if x.shape[2:] == target[1:]:
        return x
    import torch
    import torch.nn.functional as F

    t = F.interpolate(torch.from_numpy(x), size=target[1:], mode="bilinear", align_corners=False)
    return t.numpy().astype(np.float32)
