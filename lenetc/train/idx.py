"""Stage 4a helper, data files: an IDX (MNIST-format) file, raw or gzip -> a numpy array.

Takes a path; returns the array with its shape and dtype from the file's header (read_idx), or,
for an uncompressed file, the same array memory-mapped (map_idx), so that files larger than memory
can be streamed. Every way a file
can be wrong (missing, not IDX, truncated, a broken gzip stream) is a RuntimeFailure naming the
file and what is wrong in one line. write_idx is the inverse, for tests and for people converting
their own data. No torch import.

The format (yann.lecun.com/exdb/mnist): two zero bytes, a type code, the number of dimensions, one
big-endian uint32 per dimension, then the values in C order, big-endian.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import RuntimeFailure, cannot_read

# type code -> numpy dtype, all big-endian as the format requires
DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: Path, what: str = "file") -> np.ndarray:
    """The array stored in an IDX file; gzip is recognised by its magic bytes, not the name."""
    raw = _read_bytes(path, what)
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise RuntimeFailure(f"{what} {path}: broken gzip stream ({exc})") from None
    dtype, shape, header = _header(raw, len(raw), path, what)
    values = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))  # native byte order for numpy and torch


def map_idx(path: Path, what: str = "file"):
    """An uncompressed IDX file memory-mapped (a `Mapped`, read batch by batch), or a gzip one
    read into memory as read_idx does (a stream cannot be mapped)."""
    from .npy import Mapped

    try:
        with open(path, "rb") as handle:
            head = handle.read(4 + 4 * 255)
            size = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        raise cannot_read(exc, path, what) from None
    if head[:2] == _GZIP_MAGIC:
        return read_idx(path, what)
    dtype, shape, header = _header(head, size, path, what)
    return Mapped(Path(path), dtype, shape, header, what)


def _header(raw: bytes, size: int, path: Path, what: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """(dtype, shape, header bytes) from the first bytes of an IDX file of `size` bytes."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in DTYPES or raw[3] == 0:
        raise RuntimeFailure(
            f"{what} {path}: not an IDX file (header {raw[:4].hex() or 'empty'}; "
            f"expected 0000 then a type code and a dimension count, e.g. 00000803 for images)"
        )
    dtype, ndim = DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise RuntimeFailure(f"{what} {path}: truncated header ({len(raw)} bytes)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size != expected:
        raise RuntimeFailure(
            f"{what} {path}: header says shape {tuple(shape)} ({expected} bytes), "
            f"but the file has {size} bytes"
        )
    return dtype, tuple(int(n) for n in shape), header


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """Write an array as IDX (gzip when compress), e.g. to turn your own data into MNIST format."""
    codes = {dt.newbyteorder("="): code for code, dt in DTYPES.items()}
    arr = np.asarray(array)
    code = codes.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX cannot store {arr.dtype}")
    payload = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    payload += arr.astype(DTYPES[code]).tobytes()
    Path(path).write_bytes(gzip.compress(payload, mtime=0) if compress else payload)


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise cannot_read(exc, path, what) from None
