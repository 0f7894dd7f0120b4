"""PostgreSQL's binary COPY format written from Arrow columns, without a Python object per
value: each column's bytes are scattered into one buffer by vectorised index arithmetic.

``encode(columns, kinds)`` returns the whole COPY stream (signature, rows, trailer) for
``COPY t (...) FROM STDIN (FORMAT binary)``; ``rows(columns, kinds)`` the rows alone, so two
streams can be compared byte for byte with what ``COPY ... TO STDOUT (FORMAT binary)``
gives back. A kind is the target column's ``pg_type.typname`` (enums pass as ``text``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
#: Microseconds and days from the Unix epoch to PostgreSQL's (2000-01-01).
PG_EPOCH_US = 946_684_800_000_000
PG_EPOCH_DAYS = 10_957

_FIXED: dict[str, str] = {
    "int2": ">i2",
    "int4": ">i4",
    "int8": ">i8",
    "float4": ">f4",
    "float8": ">f8",
    "bool": "u1",
    "timestamptz": ">i8",
    "timestamp": ">i8",
    "date": ">i4",
}
_VARIABLE = frozenset({"text", "varchar", "bytea", "json", "jsonb"})
_ARROW: dict[str, pa.DataType] = {
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "bool": pa.bool_(),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "timestamp": pa.timestamp("us"),
    "date": pa.date32(),
    "text": pa.string(),
    "varchar": pa.string(),
    "json": pa.string(),
    "jsonb": pa.string(),
    "bytea": pa.binary(),
    "uuid": pa.binary(16),
}
SUPPORTED = frozenset(_ARROW)


def arrow_type(kind: str) -> pa.DataType:
    """The Arrow type a converted column of this PostgreSQL type is held in."""
    return _ARROW[kind]


def _fixed_bytes(array: pa.Array, kind: str) -> np.ndarray[Any, Any]:
    """The big-endian bytes of each value (rows x width); NULL slots hold zeros."""
    if kind == "bool":
        values = np.asarray(array.fill_null(False).to_numpy(zero_copy_only=False), dtype=np.uint8)
        return values.reshape(-1, 1)
    if kind == "uuid":
        data = np.frombuffer(array.buffers()[1], dtype=np.uint8)
        start = array.offset * 16
        return data[start : start + len(array) * 16].reshape(-1, 16)
    if kind in ("timestamptz", "timestamp"):
        raw = array.cast(pa.int64()).fill_null(0).to_numpy() - PG_EPOCH_US
    elif kind == "date":
        raw = array.cast(pa.int32()).fill_null(0).to_numpy().astype(np.int64) - PG_EPOCH_DAYS
    else:
        raw = array.fill_null(0).to_numpy()
    width = np.dtype(_FIXED[kind]).itemsize
    return np.ascontiguousarray(raw.astype(_FIXED[kind])).view(np.uint8).reshape(-1, width)


_NULL_FIELD = pa.scalar(b"\xff\xff\xff\xff", pa.binary())


def _binary(rows: np.ndarray[Any, Any]) -> pa.Array:
    """A binary array of the rows of a 2-D uint8 array."""
    n, width = rows.shape
    data = pa.py_buffer(np.ascontiguousarray(rows).tobytes())
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n, [None, data]).cast(pa.binary())


def _fields(array: pa.Array, kind: str) -> list[pa.Array]:
    """The column's fields, one binary value per row: the length word and the bytes
    (for jsonb, its version byte first), or the length -1 alone for NULL."""
    n = len(array)
    ok = (
        np.ones(n, dtype=bool)
        if array.null_count == 0
        else np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    )
    if kind in _VARIABLE:
        data = array.cast(pa.binary()).fill_null(b"")
        offsets = np.frombuffer(data.buffers()[1], dtype=np.int32)[
            data.offset : data.offset + n + 1
        ]
        extra = 1 if kind == "jsonb" else 0
        length = np.where(ok, np.diff(offsets) + extra, -1).astype(">i4")
        parts = [_binary(length.view(np.uint8).reshape(-1, 4))]
        if extra:
            parts.append(pc.if_else(pa.array(ok), pa.scalar(b"\x01"), pa.scalar(b"")))
        return [*parts, data]
    values = _fixed_bytes(array, kind)
    width = values.shape[1]
    field = np.empty((n, 4 + width), dtype=np.uint8)
    field[:, :4] = np.frombuffer(width.to_bytes(4, "big"), dtype=np.uint8)
    field[:, 4:] = values
    whole = _binary(field)
    return [whole if ok.all() else pc.if_else(pa.array(ok), whole, _NULL_FIELD)]


def rows(columns: list[pa.Array], kinds: list[str]) -> memoryview:
    """The tuples of the binary COPY format, one per row, without signature or trailer:
    each row's fields joined by Arrow's kernel, the result's data buffer taken whole."""
    if not columns or not len(columns[0]):
        return memoryview(b"")
    count = pa.scalar(len(columns).to_bytes(2, "big", signed=True))
    parts = [
        field
        for column, kind in zip(columns, kinds, strict=True)
        for field in _fields(column, kind)
    ]
    joined = pc.binary_join_element_wise(count, *parts, b"")
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int32)
    start, end = int(offsets[joined.offset]), int(offsets[joined.offset + len(joined)])
    return memoryview(joined.buffers()[2])[start:end]


def encode(columns: list[pa.Array], kinds: list[str]) -> bytes:
    """A whole binary COPY stream of these columns."""
    return b"".join((SIGNATURE, rows(columns, kinds), TRAILER))


def body(stream: bytes) -> bytes:
    """The tuples of a binary COPY stream (``COPY ... TO STDOUT (FORMAT binary)``)."""
    if not stream.startswith(SIGNATURE[:11]):
        raise ValueError("not a binary COPY stream")
    extension = int.from_bytes(stream[15:19], "big")
    start = 19 + extension
    end = len(stream) - 2 if stream.endswith(TRAILER) else len(stream)
    return stream[start:end]


def python_values(array: pa.Array, kind: str) -> list[Any]:
    """The column's values as asyncpg takes them (for the row-by-row retry)."""
    values: list[Any] = array.to_pylist()
    if kind == "uuid":
        import uuid

        return [None if v is None else uuid.UUID(bytes=v) for v in values]
    return values
