"""Data larger than memory: .npy files and raw IDX memory-mapped and streamed through a DataLoader.

The weight of it: the same data streamed from a file and held in memory trains to the same weights,
bit for bit (same statistics, same batches, same order), with and without DataLoader workers; the
one-pass statistics equal numpy's; every broken file is one line before training.
"""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lenetc.errors import RuntimeFailure, SpecError
from lenetc.spec.config import DatasetConfig, OptimizerConfig, TrainConfig
from lenetc.train import npy, streaming
from lenetc.train.datasets import load_dataset
from lenetc.train.idx import write_idx
from lenetc.train.loop import TrainIO, fit
from lenetc.train.streaming import Rows, heldout, stream_stats

QUIET = TrainIO(log=lambda line: None)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convolutions gain nothing from a second thread, and lose much on shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class SmallConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, kernel_size=3)
        self.fc1 = nn.Linear(4 * 7 * 7, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (N, 4, 7, 7): (16 - 3 + 1) / 2
        return self.fc1(torch.flatten(x, 1))


def images(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 pixels (N, 1, 12, 12) whose brightness depends on the class: learnable."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = np.clip(rng.normal(60 + 60 * y[:, None, None, None], 40, (n, 1, 12, 12)), 0, 255)
    return x.astype(np.uint8), y.astype(np.int64)


def config(dataset: DatasetConfig, **kw) -> TrainConfig:
    base = TrainConfig(
        dataset=dataset,
        epochs=2,
        batch_size=16,
        optimizer=OptimizerConfig(type="sgd", lr=0.05, momentum=0.9),
        seed=2,
    )
    return dataclasses.replace(base, **kw)


def train(cfg: TrainConfig, base) -> tuple[nn.Module, object]:
    data = load_dataset(
        cfg.dataset, (1, 16, 16), 3, seed=cfg.seed, validation_split=0.1, base_dir=base
    )
    torch.manual_seed(0)
    model = SmallConvNet()
    result = fit(model, data, cfg, QUIET)
    return model, data, result


def save_npy_and_npz(tmp_path, x, y):
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    np.savez(tmp_path / "set.npz", x=x, y=y)


@pytest.mark.parametrize("workers", [0, 1], ids=["in-process", "one-worker"])
def test_streamed_npy_trains_to_the_in_memory_weights(tmp_path, workers):
    x, y = images()
    save_npy_and_npz(tmp_path, x, y)
    in_memory = DatasetConfig(name="npz", path="set.npz", fit="pad")
    streamed = DatasetConfig(name="npy", x="x.npy", y="y.npy", fit="pad")
    a, da, ra = train(config(in_memory), tmp_path)
    b, db, rb = train(config(streamed, workers=workers), tmp_path)
    assert isinstance(db.x_train, Rows) and isinstance(da.x_train, np.ndarray)
    # a streamed split pickles as its file's path, rows and statistics (any worker start method)
    blob = pickle.dumps(db.x_train)
    assert len(blob) < 4096 and np.array_equal(np.asarray(pickle.loads(blob)), db.x_train)
    assert (da.mean, da.std) == (db.mean, db.std)  # the same bits, not merely close
    assert np.array_equal(da.x_val, np.asarray(db.x_val))
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    assert [m["train_loss"] for m in ra.metrics] == [m["train_loss"] for m in rb.metrics]
    assert ra.test_accuracy == rb.test_accuracy > 0.8
    # export reads the raw range of a streamed split from the statistics pass
    lo, hi = db.input_range
    assert (lo, hi) == (0.0, float(x.max()) / 255.0)


def test_raw_idx_is_mapped_and_equals_the_gzip_file_in_memory(tmp_path):
    x, y = images(120)
    for gz in (False, True):
        write_idx(tmp_path / f"img{gz:d}", x[:, 0], compress=gz)
        write_idx(tmp_path / f"lab{gz:d}", y.astype(np.uint8), compress=gz)

    def load(gz: bool):
        cfg = DatasetConfig(
            name="idx", fit="pad", train_images=f"img{gz:d}", train_labels=f"lab{gz:d}"
        )
        return load_dataset(cfg, (1, 16, 16), 3, seed=1, validation_split=0.1, base_dir=tmp_path)

    raw, gz = load(False), load(True)
    assert isinstance(raw.x_train, Rows) and isinstance(gz.x_train, np.ndarray)
    assert (raw.mean, raw.std) == (gz.mean, gz.std)
    assert np.array_equal(np.asarray(raw.x_train), gz.x_train)
    assert np.array_equal(np.asarray(raw.x_test), gz.x_test)


def test_one_pass_statistics_equal_numpys_over_many_chunks(monkeypatch):
    rng = np.random.default_rng(0)
    x = (rng.normal(3.0, 2.0, (500, 3, 5, 5)) * rng.uniform(0.5, 2, (1, 3, 1, 1))).astype(
        np.float32
    )
    monkeypatch.setattr(streaming, "STATS_BYTES", 8 * 75 * 7)  # 7 samples a chunk: 72 chunks
    rows = rng.permutation(500)[:450]
    mean, std, (lo, hi) = stream_stats(lambda r: x[r], rows, (3, 5, 5))
    ref = x[rows]
    np.testing.assert_allclose(mean, ref.mean(axis=(0, 2, 3), dtype=np.float64), rtol=1e-13)
    np.testing.assert_allclose(std, ref.std(axis=(0, 2, 3), dtype=np.float64), rtol=1e-12)
    assert (lo, hi) == (float(ref.min()), float(ref.max()))
    const = np.ones((10, 2), np.float32)  # a constant feature gets std 1, not a division by 0
    assert list(stream_stats(lambda r: const[r], np.arange(10), (2,))[1]) == [1.0, 1.0]


def test_mapped_pages_are_handed_back_as_reading_goes_on(tmp_path, monkeypatch):
    x, _ = images(200)
    np.save(tmp_path / "x.npy", x)
    mapped = npy.map_npy(tmp_path / "x.npy", "npy x")
    released = []
    real = npy.Mapped.release
    monkeypatch.setattr(npy, "RELEASE_BYTES", 144 * 50)  # every 50 rows of 144 bytes
    monkeypatch.setattr(npy.Mapped, "release", lambda self: (released.append(1), real(self)))
    for i in range(0, 200, 10):  # rows read after a release come back from the page cache
        assert np.array_equal(mapped[np.arange(i, i + 10)], x[i : i + 10])
    assert len(released) == 4 and mapped._read == 0
    state = mapped.__getstate__()
    assert state["_map"] is None  # a worker reopens the file; it never receives a copy


def test_heldout_takes_only_what_verify_can_use(tmp_path, monkeypatch):
    x, y = images(50)
    monkeypatch.setattr(streaming, "HELDOUT_SAMPLES", 20)
    hx, hy = heldout(x.astype(np.float32), y)
    assert hx.shape == (20, 1, 12, 12) and np.array_equal(hy, y[:20])
    monkeypatch.setattr(streaming, "HELDOUT_BYTES", 4 * 144 * 7)
    assert len(heldout(x.astype(np.float32), y)[0]) == 7


def _npy_cfg(**kw) -> DatasetConfig:
    return DatasetConfig(name="npy", x="x.npy", y="y.npy", fit="pad", **kw)


@pytest.mark.parametrize(
    "break_it, message",
    [
        (
            lambda d: (d / "x.npy").write_bytes((d / "x.npy").read_bytes()[:-100]),
            r"npy x .*x.npy: truncated or padded: its header says shape \(300, 1, 12, 12\) of "
            r"uint8 \(43328 bytes\), but the file has 43228 bytes",
        ),
        (
            lambda d: np.save(d / "x.npy", np.array([["a"]] * 300)),
            r"npy x .*x.npy: must hold numbers, found dtype <U1",
        ),
        (
            lambda d: np.save(d / "y.npy", np.zeros(300, np.float32)),
            r"y.npy: y must be integer class indices, found dtype float32",
        ),
        (
            lambda d: np.save(d / "y.npy", np.zeros(299, np.int64)),
            r"y.npy: y must be 300 labels, one per sample of x, found shape \(299,\)",
        ),
        (
            lambda d: (d / "x.npy").write_bytes(b"not a numpy file at all"),
            r"npy x .*x.npy: not a .npy file",
        ),
        (lambda d: (d / "y.npy").unlink(), r"npy y .*y.npy: no such file"),
    ],
    ids=["truncated", "strings", "float-labels", "length-mismatch", "not-npy", "missing"],
)
def test_broken_npy_files_are_one_line_before_training(tmp_path, break_it, message):
    x, y = images()
    save_npy_and_npz(tmp_path, x, y)
    break_it(tmp_path)
    with pytest.raises(RuntimeFailure, match=message) as exc:
        load_dataset(_npy_cfg(), (1, 16, 16), 3, seed=0, validation_split=0.1, base_dir=tmp_path)
    assert "\n" not in str(exc.value)


def test_npy_labels_beyond_the_model_and_shapes_that_do_not_fit_are_spec_errors(tmp_path):
    x, y = images()
    save_npy_and_npz(tmp_path, x, y)
    np.save(tmp_path / "y.npy", np.where(y == 2, 7, y))
    with pytest.raises(SpecError, match="dataset npy has 8 classes, but the model outputs 3"):
        load_dataset(_npy_cfg(), (1, 16, 16), 3, seed=0, validation_split=0.1, base_dir=tmp_path)
    np.save(tmp_path / "y.npy", y)
    with pytest.raises(SpecError, match="padding cannot shrink them"):
        load_dataset(_npy_cfg(), (1, 8, 8), 3, seed=0, validation_split=0.1, base_dir=tmp_path)


def test_npy_with_its_own_test_files(tmp_path):
    x, y = images(200)
    save_npy_and_npz(tmp_path, x, y)
    np.save(tmp_path / "xt.npy", x[:30])
    np.save(tmp_path / "yt.npy", y[:30])
    cfg = _npy_cfg(x_test="xt.npy", y_test="yt.npy")
    d = load_dataset(cfg, (1, 16, 16), 3, seed=0, validation_split=0.1, base_dir=tmp_path)
    assert len(d.x_test) == 30 and len(d.x_train) + len(d.x_val) == 200
    raw = np.asarray(d.x_test)[:, 0, 2:14, 2:14] * d.std[0] + d.mean[0]
    np.testing.assert_allclose(raw, x[:30, 0] / 255.0, atol=1e-6)


def test_non_finite_streamed_samples_are_refused_naming_file_and_sample(tmp_path):
    """Streamed data is never whole in memory: training rows are checked as the statistics pass
    reads them (before training), a separate test file's rows as they are first read."""
    x, y = images(200)
    xf = x.astype(np.float32)
    xf[17, 0, 3, 4] = np.nan
    np.save(tmp_path / "x.npy", xf)
    np.save(tmp_path / "y.npy", y)
    load = lambda cfg: load_dataset(  # noqa: E731
        cfg, (1, 16, 16), 3, seed=0, validation_split=0.0, base_dir=tmp_path
    )
    # the position is the model input's: the 12 x 12 samples are padded by 2 to 16 x 16
    with pytest.raises(RuntimeFailure, match=r"x.npy: sample 17 holds nan at \[0, 5, 6\]"):
        load(_npy_cfg(x_test="x.npy", y_test="y.npy"))  # all 200 rows train
    np.save(tmp_path / "x.npy", x)
    xt = x[:30].astype(np.float32)
    xt[5, 0, 0, 0] = np.inf
    np.save(tmp_path / "xt.npy", xt)
    np.save(tmp_path / "yt.npy", y[:30])
    d = load(_npy_cfg(x_test="xt.npy", y_test="yt.npy"))
    with pytest.raises(RuntimeFailure, match=r"xt.npy: sample 5 holds inf at \[0, 2, 2\]"):
        np.asarray(d.x_test)
