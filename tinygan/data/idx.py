"""The IDX format: how MNIST and Fashion-MNIST store their images and labels.

An IDX file is a header followed by one flat array in C (row-major) order, every number big-endian::

    byte 0, 1    0x00 0x00          magic: always zero
    byte 2       type code          0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                                    0x0D float32, 0x0E float64
    byte 3       ndim               number of dimensions
    4 * ndim     d_0, ..., d_{ndim-1}   each size as a 4-byte big-endian unsigned integer
    then         d_0 * ... * d_{ndim-1} items of the declared type

So ``train-images-idx3-ubyte`` starts with ``00 00 08 03``, then 60000, 28, 28, then
60000 * 28 * 28 = 47,040,000 pixel bytes; the label file starts with ``00 00 08 01`` and 60000.
The files are usually published gzip-compressed, with a ``.gz`` suffix.

:func:`read_idx` checks every part of this (magic, type code, payload length) and raises
:class:`CorruptDatasetError`, one line naming the file and the problem, rather than letting NumPy
fail on a malformed buffer.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
"""The type code of byte 2 -> the big-endian dtype of the items."""


class CorruptDatasetError(ValueError):
    """A dataset file is malformed, truncated, or (for a download) fails its checksum."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (see the module docstring) into a NumPy array.

    Parameters
    ----------
    path : str or os.PathLike
        The file; a name ending in ``.gz`` is decompressed with gzip, anything else is read as is.

    Returns
    -------
    numpy.ndarray
        Shape and dtype from the header (e.g. uint8 of shape (60000, 28, 28)), in native byte
        order, writable.

    Raises
    ------
    CorruptDatasetError
        Bad gzip stream, a magic number other than ``00 00``, an unknown type code, or a payload
        shorter or longer than the header declares.
    """
    path = Path(path)
    content = _file_bytes(path)
    dtype, shape = _header(path, content)
    header_bytes = 4 + 4 * len(shape)
    expected = math.prod(shape) * dtype.itemsize
    found = len(content) - header_bytes
    if found != expected:
        problem = "truncated" if found < expected else "has trailing bytes"
        raise CorruptDatasetError(
            f"{path}: {problem}: header declares shape {shape} of {dtype.name} "
            f"({expected} bytes of data) but the file holds {found}"
        )
    array = np.frombuffer(content, dtype=dtype, offset=header_bytes).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # a native-order, writable copy


def _file_bytes(path: Path) -> bytes:
    """The whole content of ``path``, decompressed when its name ends in ``.gz``."""
    # Reading the whole file first (MNIST's largest is 47 MB) bounds the memory by the real data:
    # a corrupt header that claims huge dimensions is caught by the length check, not by an
    # allocation that fails.
    compressed = path.name.endswith(".gz")
    try:
        with gzip.open(path, "rb") if compressed else open(path, "rb") as file:
            return file.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise CorruptDatasetError(f"{path}: not a valid gzip file ({error})") from error


def _header(path: Path, content: bytes) -> tuple[np.dtype, tuple[int, ...]]:
    """The items' dtype and the array's shape, read from the header at the start of ``content``."""
    if len(content) < 4:
        raise CorruptDatasetError(f"{path}: {len(content)} bytes, too short for an IDX header")
    if content[:2] != b"\x00\x00":
        hint = " (it looks gzip-compressed: name it *.gz)" if content[:2] == b"\x1f\x8b" else ""
        raise CorruptDatasetError(
            f"{path}: bad magic number {content[:4].hex(' ')}, an IDX file starts with 00 00{hint}"
        )
    type_code, ndim = content[2], content[3]
    if type_code not in IDX_DTYPES:
        known = ", ".join(f"0x{code:02X}" for code in IDX_DTYPES)
        raise CorruptDatasetError(
            f"{path}: unknown IDX type code 0x{type_code:02X} (known: {known})"
        )
    header_bytes = 4 + 4 * ndim
    if len(content) < header_bytes:
        raise CorruptDatasetError(
            f"{path}: header declares {ndim} dimensions but the file ends after {len(content)} bytes"
        )
    return IDX_DTYPES[type_code], struct.unpack(f">{ndim}I", content[4:header_bytes])
