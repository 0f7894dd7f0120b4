"""Canonical forms of converted values (for verification checksums) and whole-row
converters and hashers built from the per-column rules of :mod:`aragora_repos.tools.convert`."""

from __future__ import annotations

import hashlib
import json
import struct
from collections import Counter
from collections.abc import Callable
from typing import Any

from aragora_repos.tools.convert import (
    DECIMAL_JSON,
    EPOCH,
    EPOCH_DATE,
    EPOCH_NAIVE,
    INT_RANGES,
    MICRO,
    Canonical,
    JsonText,
    TargetColumn,
    converter,
)
from aragora_repos.tools.jsonb import jsonb_text, numeric_text

Converter = Callable[[Any], Any]


def canonical(column: TargetColumn) -> Canonical:
    """Canonical text of a converted value, equal to :func:`canonical_sql` of it stored."""
    kind = column.type_name
    if kind in ("int2", "int4", "int8"):
        return str
    if kind == "bool":
        return lambda v: "t" if v else "f"
    if kind == "float8":
        return lambda v: "nan" if v != v else struct.pack(">d", v).hex()
    if kind == "float4":
        return lambda v: "nan" if v != v else struct.pack(">f", v).hex()
    if kind == "numeric":
        return numeric_text
    if kind in ("timestamptz", "timestamp"):
        origin = EPOCH if kind == "timestamptz" else EPOCH_NAIVE
        return lambda v: str((v - origin) // MICRO)
    if kind == "date":
        return lambda v: str((v - EPOCH_DATE).days)
    if kind == "bytea":
        return bytes.hex
    if kind == "jsonb":
        decode = DECIMAL_JSON.decode
        return lambda v: jsonb_text(v.document if type(v) is JsonText else decode(v))
    if kind in ("_text", "_varchar"):
        return lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    return str  # text, varchar, enum, uuid, json (kept verbatim)


def canonical_sql(column: TargetColumn, ref: str) -> str:
    """The SQL expression of the canonical text of column ``ref`` (already quoted)."""
    kind = column.type_name
    if kind == "bool":
        return f"CASE WHEN {ref} THEN 't' ELSE 'f' END"
    if kind in ("float8", "float4"):
        send = "float8send" if kind == "float8" else "float4send"
        return f"CASE WHEN {ref} = 'NaN' THEN 'nan' ELSE encode({send}({ref}), 'hex') END"
    if kind in ("timestamptz", "timestamp"):
        return f"(extract(epoch FROM {ref}) * 1000000)::numeric(30,0)::text"
    if kind == "date":
        return f"({ref} - DATE '1970-01-01')::text"
    if kind == "bytea":
        return f"encode({ref}, 'hex')"
    if kind in ("_text", "_varchar"):
        return f"array_to_json({ref})::text"
    return f"{ref}::text"


def _passes_unchanged(column: TargetColumn, ref: str) -> str | None:
    """A Python condition on ``ref`` under which ``column``'s converter returns the value
    as it is and applies no rule; None when there is no cheap one."""
    kind = column.type_name
    if kind in INT_RANGES:
        low, high = INT_RANGES[kind]
        test = f"(type({ref}) is int and {low} <= {ref} <= {high})"
    elif kind == "float8":
        test = f"type({ref}) is float"
    elif kind in ("text", "varchar"):
        test = f"(type({ref}) is str and '\\x00' not in {ref}"
        if kind == "varchar" and column.typmod >= 4:
            test += f" and len({ref}) <= {column.typmod - 4}"
        test += ")"
    elif kind == "bytea":
        test = f"type({ref}) is bytes"
    else:
        return None
    return test if column.not_null else f"({ref} is None or {test})"


def row_converter(
    columns: list[TargetColumn],
    counts: list[Counter[str]],
    offset: int,
    *,
    keep_documents: bool = False,
) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """One function converting a source row (``columns``' values from index ``offset``)
    into the record to send; it raises :class:`Reject` as the column converters do, and
    calls them only for values that are not already what they would return."""
    scope: dict[str, Any] = {}
    lines = ["def convert_row(row):"]
    for i, column in enumerate(columns):
        scope[f"c{i}"] = converter(column, counts[i], keep_documents=keep_documents)
        lines.append(f"    v{i} = row[{offset + i}]")
        test = _passes_unchanged(column, f"v{i}")
        if test is None:
            lines.append(f"    v{i} = c{i}(v{i})")
        else:
            lines.append(f"    if not {test}:")
            lines.append(f"        v{i} = c{i}(v{i})")
    lines.append(f"    return ({''.join(f'v{i}, ' for i in range(len(columns)))})")
    exec("\n".join(lines), scope)  # generated from column types only, never from data
    convert_row: Callable[[tuple[Any, ...]], tuple[Any, ...]] = scope["convert_row"]
    return convert_row


#: Types whose canonical text never holds ``|``: written ``V<text>|`` in a row's hash
#: input. Every other type's text is written ``V<length>:<text>``; NULL is ``N``.
_DELIMITED = frozenset(
    {"int2", "int4", "int8", "bool", "float4", "float8", "numeric", "timestamptz", "timestamp"}
    | {"date", "bytea", "uuid"}
)


def row_hasher(columns: list[TargetColumn]) -> Callable[[tuple[Any, ...]], int]:
    """The signed 64-bit hash of a converted record: the first 8 bytes of the MD5 of its
    columns' canonical texts, written as :data:`_DELIMITED` says; equal to
    :func:`row_hash_sql` over the stored row."""
    scope: dict[str, Any] = {"md5": hashlib.md5, "unpack": struct.Struct(">q").unpack_from}
    lines = ["def row_hash(r):"]
    if columns:
        lines.append(f"    {''.join(f'v{i}, ' for i in range(len(columns)))}= r")
    parts = []
    for i, column in enumerate(columns):
        kind = column.type_name
        if kind in ("int2", "int4", "int8", "text", "varchar", "json") or column.enum_labels:
            text = f"v{i}"  # formats as its canonical text
        else:
            scope[f"f{i}"] = canonical(column)
            text = f"f{i}(v{i})"
        delimited = kind in _DELIMITED
        if not delimited and text != f"v{i}":
            lines.append(f"    t{i} = None if v{i} is None else {text}")
            text = f"t{i}"
        written = f"V{{{text}}}|" if delimited else f"V{{len({text})}}:{{{text}}}"
        if column.not_null:
            parts.append(written)
        else:
            lines.append(f"    p{i} = 'N' if v{i} is None else f'{written}'")
            parts.append(f"{{p{i}}}")
    lines.append(f"    return unpack(md5(f'{''.join(parts)}'.encode()).digest())[0]")
    exec("\n".join(lines), scope)  # generated from column types only, never from data
    row_hash: Callable[[tuple[Any, ...]], int] = scope["row_hash"]
    return row_hash


def row_hash_sql(columns: list[TargetColumn]) -> str:
    """The SQL expression of :func:`row_hasher`'s hash of a stored row (a bigint)."""
    parts = []
    for column in columns:
        ref = '"' + column.name.replace('"', '""') + '"'
        text = canonical_sql(column, ref)
        if column.type_name in _DELIMITED:
            written = f"'V' || {text} || '|'"
        else:
            written = f"'V' || length({text}) || ':' || {text}"
        parts.append(f"CASE WHEN {ref} IS NULL THEN 'N' ELSE {written} END")
    row = " || ".join(parts) or "''"
    return f"('x' || md5({row}))::bit(64)::bigint"
