"""PostgreSQL binary COPY of fixed-width rows, straight to and from NumPy record arrays.

A million rows through ``copy.write_row`` or ``fetchall`` cost a Python object per value
(about 2 s); as one NumPy record array they cost a buffer. The binary format
(https://www.postgresql.org/docs/current/sql-copy.html, "Binary Format") is a header, then per
row a 16-bit field count and per field a 32-bit length and the value in network byte order,
then a 16-bit -1. Rows whose fields all have a fixed width are one record dtype.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # no OIDs, no ext
TRAILER = b"\xff\xff"

# Field types by width: what the columns of a row are, as big-endian NumPy types.
INT4, INT8, FLOAT8 = ">i4", ">i8", ">f8"


def row_dtype(fields: Sequence[tuple[str, str]]) -> np.dtype[np.void]:
    """The record dtype of one binary COPY row of these (name, big-endian type) fields."""
    parts: list[tuple[str, str]] = [("_n", ">i2")]
    for name, kind in fields:
        parts += [(f"_len_{name}", ">i4"), (name, kind)]
    return np.dtype(parts)


def encode(fields: Sequence[tuple[str, str]], columns: dict[str, npt.ArrayLike]) -> bytes:
    """Rows of equal-length columns (scalars repeat) as binary COPY tuples, no header/trailer."""
    dtype = row_dtype(fields)
    sizes = {np.shape(v)[0] for v in columns.values() if np.ndim(v)}  # scalars broadcast
    if len(sizes) > 1:
        raise ValueError(f"columns differ in length: {sorted(sizes)}")
    rows = np.empty(sizes.pop() if sizes else 1, dtype=dtype)
    rows["_n"] = len(fields)
    for name, _ in fields:
        rows[f"_len_{name}"] = dtype[name].itemsize
        rows[name] = columns[name]
    return rows.tobytes()


def decode(fields: Sequence[tuple[str, str]], data: bytes | bytearray) -> np.ndarray:
    """A whole binary COPY stream (header to trailer) as a record array; no NULLs allowed.

    The array is a view of ``data`` (no copy of a stream that may be tens of MB).
    """
    if not data.startswith(HEADER[:11]) or not data.endswith(TRAILER):
        raise ValueError("not a PostgreSQL binary COPY stream")
    dtype = row_dtype(fields)
    ext = int.from_bytes(data[15:19], "big")
    body = memoryview(data)[19 + ext : -len(TRAILER)]
    if len(body) % dtype.itemsize:
        raise ValueError("binary COPY rows of unexpected width: a NULL or another column type")
    rows = np.frombuffer(body, dtype=dtype)
    for name, _ in fields:
        if (rows[f"_len_{name}"] != dtype[name].itemsize).any():
            raise ValueError(f"column {name}: NULL or unexpected width in a binary COPY row")
    return rows
