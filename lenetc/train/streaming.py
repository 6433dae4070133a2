"""Stage 4a/4b helper, streaming: samples read batch by batch, whether they sit in memory or in a
memory-mapped file, and the one-pass statistics that normalize them.

- `stream_stats` takes a row reader and the training rows; returns the per-channel mean and std
  (float64 accumulators, merged chunk by chunk with Chan's parallel formula) and the raw min/max,
  reading at most STATS_BYTES of samples at a time. The in-memory datasets use it too, over the
  same chunks in the same order, so a file streamed and the same array in memory are normalized to
  the same bits and train to the same weights.
- `Rows` is a lazy split: which rows of a source, and how a batch of them becomes model input
  (to float, fit to the input shape, normalize). It indexes like an array (`rows[positions]`), so
  the loop treats an in-memory split and a streamed one alike.
- `Batches` and `loader`: a torch DataLoader over either, one batch per sampler item (a batch of
  positions, drawn by the loop or by a DistributedSampler), with `train.workers` processes.
- `heldout`: the first test samples verify needs, without reading the whole test split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..errors import RuntimeFailure

STATS_BYTES = 16 << 20  # float64 bytes per statistics chunk
HELDOUT_SAMPLES = 10_000  # heldout.npz: at most this many test samples...
HELDOUT_BYTES = 64 << 20  # ...and at most this many bytes of them


def normalize(a: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(a - mean) / std per channel (per feature for 1-D samples), computed in float64."""
    shape = (1, -1) + (1,) * (a.ndim - 2)
    t = a.astype(np.float64)  # the same float64 arithmetic as (a - mean) / std, in place
    np.subtract(t, mean.reshape(shape), out=t)
    np.divide(t, std.reshape(shape), out=t)
    return t.astype(np.float32)


def stats_chunk(sample_shape: tuple[int, ...]) -> int:
    """Samples per statistics chunk: depends on the sample size only, never on the source."""
    return max(1, STATS_BYTES // (8 * int(np.prod(sample_shape, dtype=np.int64))))


def stream_stats(
    read: Callable[[np.ndarray], np.ndarray],
    rows: np.ndarray,
    sample_shape: tuple[int, ...],
    source: str = "the training data",
) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Per-channel (mean, std, (min, max)) of the samples `read(rows)` gives, one chunk at a time.

    Rows are visited in ascending order (sequential reads from a file). A constant channel gets
    std 1. std is the population standard deviation, as np.std computes it.
    """
    rows = np.sort(rows)
    step = stats_chunk(sample_shape)
    n = 0
    mean = m2 = None
    lo, hi = np.inf, -np.inf
    for i in range(0, len(rows), step):
        x = read(rows[i : i + step])
        _refuse_non_finite(x, rows[i : i + step], source)
        axes = (0,) + tuple(range(2, x.ndim))
        c = x.astype(np.float64)
        count = c.size // c.shape[1]
        m = c.mean(axis=axes)
        d2 = ((c - m.reshape((1, -1) + (1,) * (c.ndim - 2))) ** 2).sum(axis=axes)
        if mean is None:
            n, mean, m2 = count, m, d2
        else:  # Chan, Golub and LeVeque: merge two (count, mean, M2) summaries
            delta = m - mean
            total = n + count
            mean = mean + delta * (count / total)
            m2 = m2 + d2 + delta**2 * (n * count / total)
            n = total
        lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
    assert mean is not None and m2 is not None, "stream_stats needs at least one row"
    std = np.sqrt(m2 / n)
    return mean, np.where(std < 1e-8, 1.0, std), (lo, hi)


def _refuse_non_finite(x: np.ndarray, rows: np.ndarray, source: str) -> None:
    """NaN or infinity in a training sample is refused before any training, naming the sample
    (streamed data is never whole in memory: each chunk is checked as the statistics read it)."""
    bad = ~np.isfinite(x.reshape(len(x), -1))
    if bad.any():
        k = int(np.flatnonzero(bad.any(axis=1))[0])
        where = [int(j) for j in np.unravel_index(int(np.argmax(bad[k])), x.shape[1:])]
        value = x[k].reshape(-1)[np.argmax(bad[k])]
        why = "" if np.isnan(value) else " (infinity, or a value beyond float32's ±3.4e38)"
        raise RuntimeFailure(
            f"{source}: sample {int(rows[k])} holds {value} at {where}{why}; remove or repair "
            "that sample"
        )


class Rows:
    """A split read lazily: rows `index` of a source, turned into model input batch by batch."""

    dtype = np.dtype(np.float32)

    def __init__(
        self,
        read: Callable[[np.ndarray], np.ndarray],
        index: np.ndarray,
        sample_shape: tuple[int, ...],
        mean: np.ndarray,
        std: np.ndarray,
        identity: str,
        source: str = "the data",
    ) -> None:
        self.read, self.index, self.sample_shape = read, np.asarray(index), sample_shape
        self.mean, self.std, self._identity = mean, std, identity
        self.source = source

    def __len__(self) -> int:
        return len(self.index)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self),) + self.sample_shape

    @property
    def ndim(self) -> int:
        return 1 + len(self.sample_shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __getitem__(self, key) -> np.ndarray:
        rows = self.index[key]
        if np.ndim(rows) == 0:
            return self[np.asarray([key])][0]
        x = self.read(rows)
        _refuse_non_finite(x, rows, self.source)  # validation and test rows are first seen here
        return normalize(x, self.mean, self.std)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[np.arange(len(self))]
        return out if dtype is None else out.astype(dtype)

    def identity(self) -> str:
        """What a checkpoint remembers instead of the bytes: the source, the rows, the stats."""
        h = hashlib.sha256(self._identity.encode())
        for a in (self.index, self.mean, self.std):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


class Batches(torch.utils.data.Dataset):
    """What a DataLoader reads: `batches[positions]` -> (inputs, labels) of a whole batch."""

    def __init__(self, x: np.ndarray | Rows, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, positions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(np.asarray(self.x[positions])), torch.from_numpy(self.y[positions])


def loader(
    x: np.ndarray | Rows,
    y: np.ndarray,
    batches: Sequence[np.ndarray],
    workers: int = 0,
    pin: bool = False,
) -> torch.utils.data.DataLoader:
    """Batches in the given order (one sampler item = one batch of positions), on `workers`."""
    return torch.utils.data.DataLoader(
        Batches(x, y),
        sampler=batches,
        batch_size=None,  # the sampler yields whole batches
        num_workers=workers,
        pin_memory=pin,
        # workers start from a fork server, not a fork of this process: forking a process whose
        # libraries run threads (jax under litert-torch, OpenMP pools) can crash or deadlock the
        # child; the streamed splits pickle, and Python 3.14 makes forkserver the default anyway
        multiprocessing_context="forkserver" if workers else None,
        # its own generator: a DataLoader draws a seed for its workers each epoch, and drawing
        # it from the global RNG would shift dropout's stream (and break an exact resume)
        generator=torch.Generator().manual_seed(0),
    )


def heldout(x: np.ndarray | Rows, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first test samples, as many as verify can use, in memory: (x float32, y)."""
    per = 4 * int(np.prod(x.shape[1:], dtype=np.int64)) or 1
    n = min(len(y), HELDOUT_SAMPLES, max(1, HELDOUT_BYTES // per))
    return np.asarray(x[:n], dtype=np.float32), y[:n]
