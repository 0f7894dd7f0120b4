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


def _put_be32(buf: np.ndarray[Any, Any], at: np.ndarray[Any, Any], values: Any) -> None:
    word = np.asarray(values, dtype=">i4").view(np.uint8).reshape(-1, 4)
    buf[at[:, None] + np.arange(4)] = word


def _fixed_bytes(array: pa.Array, kind: str) -> np.ndarray[Any, Any]:
    """The big-endian bytes of each value (rows x width); NULL slots hold zeros."""
    if kind == "bool":
        values = np.asarray(array.fill_null(False).to_numpy(zero_copy_only=False), dtype=np.uint8)
        return values.reshape(-1, 1)
    if kind in ("timestamptz", "timestamp"):
        raw = array.cast(pa.int64()).fill_null(0).to_numpy() - PG_EPOCH_US
    elif kind == "date":
        raw = array.cast(pa.int32()).fill_null(0).to_numpy().astype(np.int64) - PG_EPOCH_DAYS
    elif kind == "uuid":
        data = np.frombuffer(array.buffers()[1], dtype=np.uint8)
        start = array.offset * 16
        return data[start : start + len(array) * 16].reshape(-1, 16)
    else:
        raw = array.fill_null(0).to_numpy()
    width = np.dtype(_FIXED[kind]).itemsize
    return np.ascontiguousarray(raw.astype(_FIXED[kind])).view(np.uint8).reshape(-1, width)


def _variable_parts(array: pa.Array) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(offsets relative to the data, the data bytes) of a string or binary array."""
    if pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type):
        array = array.cast(pa.binary() if pa.types.is_large_binary(array.type) else pa.string())
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int32)[
        array.offset : array.offset + len(array) + 1
    ]
    data = (
        np.frombuffer(buffers[2], dtype=np.uint8)
        if buffers[2] is not None
        else np.zeros(0, dtype=np.uint8)
    )
    return offsets.astype(np.int64), data


def rows(columns: list[pa.Array], kinds: list[str]) -> bytes:
    """The tuples of the binary COPY format, one per row, without signature or trailer."""
    if not columns:
        return b""
    n = len(columns[0])
    if n == 0:
        return b""
    valid = [
        np.ones(n, dtype=bool)
        if c.null_count == 0
        else np.asarray(c.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        for c in columns
    ]
    lengths: list[np.ndarray[Any, Any]] = []  # the length word of each field (-1: NULL)
    for column, kind, ok in zip(columns, kinds, valid, strict=True):
        if kind in _VARIABLE:
            offsets, _ = _variable_parts(column)
            size = np.diff(offsets) + (1 if kind == "jsonb" else 0)
        else:
            size = np.full(n, 16 if kind == "uuid" else np.dtype(_FIXED[kind]).itemsize)
        lengths.append(np.where(ok, size, -1).astype(np.int64))
    row_size = 2 + sum(4 + np.maximum(length, 0) for length in lengths)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(row_size[:-1], out=starts[1:])
    buf = np.empty(int(starts[-1] + row_size[-1]), dtype=np.uint8)
    count = len(columns).to_bytes(2, "big", signed=True)
    buf[starts[:, None] + np.arange(2)] = np.frombuffer(count, dtype=np.uint8)
    field = starts + 2
    for column, kind, ok, length in zip(columns, kinds, valid, lengths, strict=True):
        _put_be32(buf, field, length)
        body = field + 4
        if kind in _VARIABLE:
            offsets, data = _variable_parts(column)
            if kind == "jsonb":
                buf[body[ok]] = 1  # jsonb's binary version byte
                body = body + 1
            sizes = np.where(ok, np.diff(offsets), 0)
            total = int(sizes.sum())
            if total:
                keep = sizes > 0
                counts = sizes[keep]
                within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
                source = np.repeat(offsets[:-1][keep], counts) + within
                buf[np.repeat(body[keep], counts) + within] = data[source]
        else:
            values = _fixed_bytes(column, kind)
            width = values.shape[1]
            at = body[ok]
            buf[at[:, None] + np.arange(width)] = values[ok]
        field = field + 4 + np.maximum(length, 0)
    return buf.tobytes()


def encode(columns: list[pa.Array], kinds: list[str]) -> bytes:
    """A whole binary COPY stream of these columns."""
    return SIGNATURE + rows(columns, kinds) + TRAILER


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
    values = array.to_pylist()
    if kind == "uuid":
        import uuid

        return [None if v is None else uuid.UUID(bytes=v) for v in values]
    return values
