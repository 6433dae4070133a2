"""Stage 4a: every dataset source, fitting samples to the spec's input, and the errors for bad data.

Each file format is exercised with small files written here (IDX raw and gzip, npz); each kind of
bad file must give a one-line RuntimeFailure that names the file and what is wrong.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lenetc.cli import main
from lenetc.errors import Location, RuntimeFailure, SpecError
from lenetc.spec.config import DatasetConfig
from lenetc.train.datasets import fit_samples, load_dataset
from lenetc.train.idx import read_idx, write_idx

AT = Location("spec.yaml", 7)


def load(cfg: DatasetConfig, shape=(1, 32, 32), classes=10, base: Path = Path("."), **kw):
    kw.setdefault("validation_split", 0.1)
    return load_dataset(cfg, shape, classes, seed=0, spec_path="spec.yaml", base_dir=base, **kw)


def mnist_like(tmp_path: Path, n: int, classes: int = 10, gz: bool = False, stem: str = "train"):
    """n random 28x28 uint8 images and labels 0..classes-1 as MNIST-format files."""
    rng = np.random.default_rng(n)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % classes).astype(np.uint8)
    suffix = ".gz" if gz else ""
    write_idx(tmp_path / f"{stem}-images-idx3-ubyte{suffix}", images, compress=gz)
    write_idx(tmp_path / f"{stem}-labels-idx1-ubyte{suffix}", labels, compress=gz)
    return images, labels


def idx_train(**kw) -> DatasetConfig:
    """The idx dataset over mnist_like's training files, padded 28 -> 32."""
    names = dict(train_images="train-images-idx3-ubyte", train_labels="train-labels-idx1-ubyte")
    return DatasetConfig(name="idx", fit="pad", **{**names, **kw})


# --- digits and synthetic ---------------------------------------------------------------------


def test_digits_default_is_resized_and_normalized_on_the_training_split():
    d = load(DatasetConfig())
    assert d.x_train.shape[1:] == (1, 32, 32) and d.x_train.dtype == np.float32
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 1797
    assert len(d.x_test) == round(1797 * 0.2)
    assert d.labels == tuple("0123456789")
    # the statistics come from the training split, so it (not the others) is exactly standardized
    assert abs(float(d.x_train.mean())) < 1e-4 and abs(float(d.x_train.std()) - 1) < 1e-3
    assert len(d.mean) == len(d.std) == 1 and 0 < d.mean[0] < 1


def test_digits_flattens_into_an_mlp_input():
    d = load(DatasetConfig(), shape=(64,))
    assert d.x_train.shape[1:] == (64,) and len(d.mean) == 64


def test_synthetic_is_seeded_and_takes_the_models_class_count():
    cfg = DatasetConfig(name="synthetic", samples=50)
    a, b = load(cfg, shape=(3, 4, 4), classes=3), load(cfg, shape=(3, 4, 4), classes=3)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_train, b.y_train)
    assert a.labels == ("0", "1", "2") and a.x_train.shape[1:] == (3, 4, 4)
    other = load_dataset(cfg, (3, 4, 4), 3, seed=1, validation_split=0.1)
    assert not np.array_equal(a.x_train[:5], other.x_train[:5])


# --- idx --------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_idx_files_with_classic_28_to_32_padding(tmp_path, gz):
    images, labels = mnist_like(tmp_path, 40, gz=gz)
    test_images, test_labels = mnist_like(tmp_path, 12, gz=gz, stem="t10k")
    s = ".gz" if gz else ""
    cfg = DatasetConfig(
        name="idx",
        fit="pad",
        train_images=f"train-images-idx3-ubyte{s}",
        train_labels=f"train-labels-idx1-ubyte{s}",
        test_images=f"t10k-images-idx3-ubyte{s}",
        test_labels=f"t10k-labels-idx1-ubyte{s}",
    )
    d = load(cfg, base=tmp_path)
    assert d.x_train.shape[1:] == (1, 32, 32)
    assert len(d.x_train) + len(d.x_val) == 40 and len(d.x_val) == 4
    # the files' own test split is the test set, in file order, padded by 2 on every side
    assert np.array_equal(d.y_test, test_labels.astype(np.int64))
    raw = np.asarray(d.x_test) * d.std[0] + d.mean[0]  # undo the normalization: pixels / 255
    assert np.allclose(raw[:, 0, 2:30, 2:30], test_images / 255.0, atol=1e-5)
    assert np.allclose(raw[:, 0, :2, :], 0, atol=1e-5) and np.allclose(
        raw[:, 0, :, 30:], 0, atol=1e-5
    )
    # normalization statistics come from the raw training pixels (the padded zeros included)
    train_pixels = np.asarray(d.x_train) * d.std[0] + d.mean[0]
    assert abs(float(train_pixels.mean()) - d.mean[0]) < 1e-5


def test_idx_reader_follows_the_published_header(tmp_path):
    # written by hand, not by write_idx: magic 0x00000803, then big-endian uint32 dimensions
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "img").write_bytes(struct.pack(">IIII", 0x803, 2, 3, 4) + images.tobytes())
    assert np.array_equal(read_idx(tmp_path / "img"), images)
    big = np.array([1, -2, 300], dtype=">i4")
    (tmp_path / "int").write_bytes(struct.pack(">II", 0x0C01, 3) + big.tobytes())
    assert read_idx(tmp_path / "int").tolist() == [1, -2, 300]


def test_idx_without_test_files_holds_out_test_split(tmp_path):
    mnist_like(tmp_path, 50)
    d = load(idx_train(test_split=0.2), base=tmp_path)
    assert len(d.x_test) == 10 and len(d.x_train) + len(d.x_val) == 40


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda p: p.unlink(), "no such file"),
        (lambda p: p.write_bytes(b"\x01\x02\x03\x04rest"), "not an IDX file (header 01020304"),
        (lambda p: p.write_bytes(p.read_bytes()[:-7]), "but the file has"),
        (lambda p: p.write_bytes(gzip.compress(p.read_bytes())[:-9]), "broken gzip stream"),
        (lambda p: p.write_bytes(b""), "not an IDX file (header empty"),
    ],
    ids=["missing", "bad-magic", "truncated", "broken-gzip", "empty"],
)
def test_idx_malformed_files_are_one_line_errors(tmp_path, corrupt, message):
    mnist_like(tmp_path, 8)
    path = tmp_path / "train-images-idx3-ubyte"
    corrupt(path)
    with pytest.raises(RuntimeFailure) as exc:
        load(idx_train(train_images=path.name), base=tmp_path)
    text = str(exc.value)
    assert message in text and str(path) in text and "\n" not in text


def test_idx_label_count_must_match_images(tmp_path):
    mnist_like(tmp_path, 8)
    write_idx(tmp_path / "labels", np.zeros(7, dtype=np.uint8))
    with pytest.raises(RuntimeFailure, match=r"labels must be 8 labels, one per sample.*\(7,\)"):
        load(idx_train(train_labels="labels"), base=tmp_path)


def test_labels_beyond_the_models_outputs_are_a_spec_error(tmp_path):
    mnist_like(tmp_path, 24, classes=12)
    with pytest.raises(SpecError) as exc:
        load(idx_train(line=7), base=tmp_path)
    assert str(exc.value) == (
        "spec.yaml:7: dataset idx has 12 classes, but the model outputs 10\n"
        "  hint: make the last layer out_features: 12"
    )


def test_digits_into_a_model_with_the_wrong_class_count_is_a_spec_error():
    with pytest.raises(SpecError, match="dataset digits has 10 classes, but the model outputs 12"):
        load(DatasetConfig(line=3), classes=12)


# --- npz --------------------------------------------------------------------------------------


def test_npz_with_its_own_test_split_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "d.npz",
        x=rng.normal(size=(30, 6)).astype(np.float32),
        y=np.arange(30) % 3,
        x_test=rng.normal(size=(5, 6)),
        y_test=np.array([0, 1, 2, 0, 1]),
        labels=np.array(["cat", "dog", "eel"]),
    )
    d = load(DatasetConfig(name="npz", path="d.npz"), shape=(6,), classes=3, base=tmp_path)
    assert d.labels == ("cat", "dog", "eel") and len(d.x_test) == 5
    assert len(d.x_train) == 27 and d.x_train.dtype == np.float32


def test_npz_flat_samples_unflatten_into_an_image_input(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((10, 16), np.uint8), y=np.zeros(10, np.int64))
    d = load(DatasetConfig(name="npz", path="d.npz"), shape=(1, 4, 4), classes=2, base=tmp_path)
    assert d.x_train.shape[1:] == (1, 4, 4)


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": np.zeros((4, 2))}, "has no array 'y' (arrays found: x)"),
        ({"x": np.zeros((4, 2)), "y": np.zeros(4)}, "y must be integer class indices"),
        ({"x": np.zeros((4, 2)), "y": np.zeros(3, int)}, "y must be 4 labels"),
        ({"x": np.array(["a"] * 4), "y": np.zeros(4, int)}, "x must be numbers"),
        ({"x": np.zeros((4, 2)), "y": np.zeros(4, int), "x_test": np.zeros((1, 2))}, "x_test and"),
    ],
    ids=["no-y", "float-labels", "count", "strings", "half-test"],
)
def test_npz_bad_arrays(tmp_path, arrays, message):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(RuntimeFailure) as exc:
        load(DatasetConfig(name="npz", path="d.npz"), shape=(2,), classes=2, base=tmp_path)
    assert message in str(exc.value) and "d.npz" in str(exc.value)


@pytest.mark.parametrize(
    "content, message",
    [(None, "no such file"), (b"not a zip", "not a readable .npz archive")],
    ids=["missing", "garbage"],
)
def test_npz_unreadable_files(tmp_path, content, message):
    if content is not None:
        (tmp_path / "d.npz").write_bytes(content)
    with pytest.raises(RuntimeFailure, match=message):
        load(DatasetConfig(name="npz", path="d.npz"), shape=(2,), classes=2, base=tmp_path)


def test_npz_pickled_objects_are_refused(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.array([object()] * 4), y=np.zeros(4, int))
    with pytest.raises(RuntimeFailure, match="not a readable .npz archive"):
        load(DatasetConfig(name="npz", path="d.npz"), shape=(2,), classes=2, base=tmp_path)


# --- fitting samples to the input -------------------------------------------------------------


def test_fit_pad_centers_and_resize_interpolates():
    x = np.ones((2, 1, 3, 3), np.float32)
    padded = fit_samples(x, (1, 6, 6), "pad", "d", AT)
    assert padded.shape == (2, 1, 6, 6) and padded.sum() == 18
    assert padded[0, 0, 1:4, 1:4].min() == 1  # odd margins: the extra row and column go last
    resized = fit_samples(x, (3, 6, 6), "resize", "d", AT)
    assert resized.shape == (2, 3, 6, 6) and np.allclose(resized, 1)


@pytest.mark.parametrize(
    "shape, fit, message, hint",
    [
        ((1, 32, 32), "none", "are not the spec's input (1, 32, 32) with fit: none", "fit: resize"),
        ((1, 4, 4), "pad", "padding cannot shrink them to", "use fit: resize"),
        ((3, 8, 8), "none", "are not", "fit: pad"),
    ],
)
def test_fit_mismatches_are_spec_errors_with_a_way_out(shape, fit, message, hint):
    with pytest.raises(SpecError) as exc:
        fit_samples(np.zeros((2, 1, 8, 8), np.float32), shape, fit, "digits", AT)
    text = str(exc.value)
    assert text.startswith("spec.yaml:7: dataset digits has samples of shape (1, 8, 8)")
    assert message in text and hint in text


def test_channel_mismatch_names_the_channels():
    with pytest.raises(SpecError, match="their channels do not match"):
        fit_samples(np.zeros((2, 2, 8, 8), np.float32), (3, 8, 8), "resize", "d", AT)


# --- end to end: the CLI says it in one line, exit 1, no traceback --------------------------------

SPEC = """\
name: tiny
input: {shape: [1, 28, 28]}
layers:
  - {type: flatten}
  - {type: linear, out_features: 10}
train:
  dataset: {name: idx, fit: none, train_images: nowhere/train.idx, train_labels: y.idx}
"""


def test_cli_missing_dataset_file_exits_1_in_one_line(tmp_path):
    (tmp_path / "tiny.yaml").write_text(SPEC)
    result = CliRunner().invoke(main, ["build", str(tmp_path / "tiny.yaml"), "-o", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert result.stderr == f"error: train images {tmp_path / 'nowhere/train.idx'}: no such file\n"
