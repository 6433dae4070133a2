"""Stage 4a helper, data files larger than memory: a NumPy `.npy` file -> a memory-mapped array.

Takes a path; returns a `Mapped`: the array as the file's header describes it (shape, dtype,
C or Fortran order), read on demand through a memory map. Reading rows copies them out; after every
RELEASE_BYTES read the map's pages are handed back to the kernel (madvise DONTNEED), so a pass over
a file larger than memory keeps the resident set small instead of growing to the file's size.
(Measured: the kernel maps whole large page-cache folios on a fault, so random rows map ~16x the
bytes they hold; released every 64 MiB, the mapping of a 2 GiB file reached 1 GiB, every 4 MiB it
stays under 20 MiB, and a release costs far less than the reads it follows.)
They stay in the page cache: the next read of the same rows is a minor fault, not a disk read.
Every way a file can be wrong (missing, not .npy, pickled objects, truncated) is a RuntimeFailure
naming the file in one line, raised when the file is opened, before any training. No torch import.
A `Mapped` pickles as its path (DataLoader workers under spawn reopen the file, never copy it).
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RuntimeFailure, cannot_read

RELEASE_BYTES = 4 << 20


class Mapped:
    """A read-only array in a file, mapped, with the touched pages released as reading goes on."""

    def __init__(
        self,
        path: Path,
        dtype: np.dtype,
        shape: tuple[int, ...],
        offset: int,
        what: str,
        fortran: bool = False,
    ) -> None:
        self.path, self.dtype, self.shape, self.offset = path, np.dtype(dtype), shape, offset
        self.what, self.fortran = what, fortran
        self._map: np.memmap | None = None
        self._read = 0

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def _array(self) -> np.ndarray:
        if self._map is None:
            if 0 in self.shape:  # np.memmap cannot map zero bytes
                self._map = np.empty(self.shape, self.dtype)  # type: ignore[assignment]
            else:
                self._map = np.memmap(
                    self.path,
                    dtype=self.dtype,
                    mode="r",
                    offset=self.offset,
                    shape=self.shape,
                    order="F" if self.fortran else "C",
                )
        return self._map

    def __getitem__(self, key: Any) -> np.ndarray:
        """Rows (an index, slice, index array or ...) copied out in native byte order, at most
        RELEASE_BYTES at a time, releasing the mapped pages between pieces."""
        native = self.dtype.newbyteorder("=")
        if self.ndim == 0:
            return np.array(self._array(), dtype=native)
        if isinstance(key, (int, np.integer)):
            return self[np.asarray([key])][0]
        if key is Ellipsis:
            key = slice(None)
        rows = np.arange(*key.indices(len(self))) if isinstance(key, slice) else np.asarray(key)
        out = np.empty((len(rows),) + self.shape[1:], native)
        row_bytes = max(1, out[:1].nbytes)
        step = max(1, RELEASE_BYTES // row_bytes)
        mapped = self._array()
        for i in range(0, len(rows), step):
            out[i : i + step] = mapped[rows[i : i + step]]
            self._read += len(rows[i : i + step]) * row_bytes
            if self._read >= RELEASE_BYTES:
                self.release()
        return out

    def release(self) -> None:
        """Drop the mapped pages from this process (they stay cached by the kernel)."""
        self._read = 0
        handle = getattr(self._map, "_mmap", None)
        if handle is not None and hasattr(handle, "madvise"):
            handle.madvise(mmap.MADV_DONTNEED)

    def identity(self) -> str:
        """What a checkpoint remembers of the file: name, size, modification time, layout."""
        st = os.stat(self.path)
        return f"{self.path.name}|{st.st_size}|{st.st_mtime_ns}|{self.dtype.str}|{self.shape}"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_map": None, "_read": 0}


def map_npy(path: Path, what: str) -> Mapped:
    """The array in a .npy file, memory-mapped, after checking its header against its size."""
    try:
        with open(path, "rb") as handle:
            try:
                fmt = np.lib.format
                version = fmt.read_magic(handle)
                header = fmt.read_array_header_1_0 if version == (1, 0) else None
                shape, fortran, dtype = (header or fmt.read_array_header_2_0)(handle)
            except ValueError as exc:
                raise RuntimeFailure(f"{what} {path}: not a .npy file ({exc})") from None
            offset = handle.tell()
            size = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        raise cannot_read(exc, path, what) from None
    if dtype.hasobject or dtype.kind not in "uifb":
        raise RuntimeFailure(
            f"{what} {path}: must hold numbers, found dtype {dtype} "
            "(save it with np.save from a numeric array)"
        )
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size != expected:
        raise RuntimeFailure(
            f"{what} {path}: truncated or padded: its header says shape {tuple(shape)} of "
            f"{dtype} ({expected} bytes), but the file has {size} bytes"
        )
    return Mapped(Path(path), dtype, tuple(int(n) for n in shape), offset, what, bool(fortran))
