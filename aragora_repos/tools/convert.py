"""Conversion of SQLite values to a PostgreSQL column's type, and their canonical form.

Each target type has one converter. A converter returns the value to send, or raises
:class:`Reject` with the reason; every value it changes (rather than passes through)
follows a named rule, counted per column so the report shows what was converted and how.
Nothing else is coerced: a value no rule covers is rejected.

Each type also has a canonical text form, computed here from the converted value and in
PostgreSQL (:func:`canonical_sql`) from the stored one, so a checksum over both sides
compares what was meant to be stored with what was.
"""

from __future__ import annotations

import json
import math
import re
import struct
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from aragora_repos.codec import check_numeric
from aragora_repos.errors import DataError
from aragora_repos.tools.jsonb import jsonb_text

Converter = Callable[[Any], Any]
Canonical = Callable[[Any], str]


class Reject(Exception):
    """A value no declared rule converts; the message is the reason."""


class UnsupportedType(Exception):
    """A target column type this module has no converter for."""


@dataclass(frozen=True, slots=True)
class TargetColumn:
    """A PostgreSQL column as the catalog describes it."""

    name: str
    type_name: str  # pg_type.typname: int4, bool, _text, user_role, ...
    formatted: str  # format_type(): integer, character varying(20), ...
    not_null: bool
    enum_labels: tuple[str, ...] = ()
    typmod: int = -1


#: Rule names as they appear in reports.
RULES = {
    "bool_int": "integer 0/1 as boolean",
    "bool_text": "text true/false/t/f/yes/no/on/off/1/0 as boolean",
    "bool_real": "real 0.0/1.0 as boolean",
    "int_real": "integral real as integer",
    "int_text": "decimal integer text as integer",
    "real_int": "integer as double precision (exact below 2^53)",
    "real_text": "decimal number text as double precision",
    "real4": "double rounded to real",
    "num_int": "integer as numeric",
    "num_real": "real as numeric (shortest round-trip digits)",
    "num_text": "decimal text as numeric",
    "text_int": "integer as its decimal text",
    "text_real": "real as its shortest round-trip text",
    "text_blob": "UTF-8 blob as text",
    "blob_text": "text as its UTF-8 bytes",
    "ts_naive": "timestamp text without zone taken as UTC",
    "ts_zone": "timestamp text with zone converted to UTC",
    "ts_date": "date text as midnight UTC",
    "ts_epoch_s": "epoch seconds as timestamp",
    "ts_epoch_ms": "epoch milliseconds as timestamp",
    "date_ts": "timestamp text at midnight as date",
    "json_number": "number as JSON number",
    "json_blob": "UTF-8 blob as JSON text",
    "json_respelled": "JSON respelled by jsonb (key order, spacing, number form; same document)",
    "json_duplicate_keys": "JSON object with a repeated key: jsonb keeps the last value only",
    "uuid_blob": "16-byte blob as UUID",
    "uuid_text": "UUID text in a non-canonical form",
    "array_json": "JSON array text as array",
}

INT_RANGES = {
    "int2": (-(2**15), 2**15 - 1),
    "int4": (-(2**31), 2**31 - 1),
    "int8": (-(2**63), 2**63 - 1),
}
_INT_TEXT = re.compile(r"[+-]?[0-9]+\Z")
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_EPOCH_TEXT = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?\Z")
_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0"})
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_NAIVE = datetime(1970, 1, 1)
EPOCH_DATE = date(1970, 1, 1)
MICRO = timedelta(microseconds=1)
#: Seconds below this magnitude are epoch seconds (year 5138); below 1e14, milliseconds.
_EPOCH_S_LIMIT = 1e11
_EPOCH_MS_LIMIT = 1e14


class InvalidText(bytes):
    """A SQLite TEXT value that is not UTF-8; no converter accepts it."""


def sqlite_text(raw: bytes) -> str | InvalidText:
    """A SQLite TEXT value read as bytes: its text, or :class:`InvalidText` when it is not
    UTF-8 (only a raw write can put such text there)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return InvalidText(raw)


def _describe(value: Any) -> str:
    if type(value) is InvalidText:
        return f"text that is not UTF-8 (x'{value[:32].hex()}')"
    kind = {int: "integer", float: "real", str: "text", bytes: "blob"}.get(type(value), "value")
    return kind


def converter(
    column: TargetColumn, counts: Counter[str], *, keep_documents: bool = False
) -> Converter:
    """The converter for ``column``; rule applications are counted in ``counts``. With
    ``keep_documents``, a jsonb text comes back as :class:`JsonText` holding the document
    its validation parsed, so its canonical form needs no second parse."""
    build = _BUILDERS.get(column.type_name)
    if keep_documents and column.type_name == "jsonb":
        build = _jsonb_keeping_documents
    if build is None and column.enum_labels:
        build = _enum
    if build is None:
        raise UnsupportedType(
            f"column {column.name}: no conversion into {column.formatted} "
            f"(supported: {', '.join(sorted(_BUILDERS))}, enums)"
        )
    convert = build(column, counts)
    not_null = column.not_null

    def convert_or_null(value: Any) -> Any:
        if value is None:
            if not_null:
                raise Reject("NULL in a NOT NULL column")
            return None
        return convert(value)

    return convert_or_null


def _int(column: TargetColumn, counts: Counter[str]) -> Converter:
    low, high = INT_RANGES[column.type_name]
    label = column.formatted

    def convert(value: Any) -> Any:
        kind = type(value)
        if kind is int:
            if low <= value <= high:
                return value
            raise Reject(f"{value} is out of range for {label}")
        if kind is float:
            if math.isfinite(value) and value == int(value):
                counts["int_real"] += 1
                return convert(int(value))
            raise Reject(f"real {value!r} is not an integer")
        if kind is str and _INT_TEXT.match(value):
            counts["int_text"] += 1
            return convert(int(value))
        raise Reject(f"{_describe(value)} {_short(value)} in an integer column")

    return convert


def _bool(column: TargetColumn, counts: Counter[str]) -> Converter:
    def convert(value: Any) -> Any:
        kind = type(value)
        if kind is int and value in (0, 1):
            counts["bool_int"] += 1
            return value == 1
        if kind is str:
            lowered = value.lower()
            if lowered in _TRUE or lowered in _FALSE:
                counts["bool_text"] += 1
                return lowered in _TRUE
        if kind is float and value in (0.0, 1.0):
            counts["bool_real"] += 1
            return value == 1.0
        raise Reject(f"{_describe(value)} {_short(value)} is not a boolean")

    return convert


def _float(column: TargetColumn, counts: Counter[str]) -> Converter:
    single = column.type_name == "float4"

    def narrow(value: float) -> float:
        if not single:
            return value
        if math.isfinite(value) and abs(value) > 3.4028234663852886e38:
            raise Reject(f"{value!r} is out of range for real")
        rounded: float = struct.unpack(">f", struct.pack(">f", value))[0]
        if rounded != value and not math.isnan(value):
            counts["real4"] += 1
        return rounded

    def convert(value: Any) -> Any:
        kind = type(value)
        if kind is float:
            return narrow(value)
        if kind is int:
            as_float = float(value)
            if int(as_float) != value:
                raise Reject(f"integer {value} has no exact double precision value")
            counts["real_int"] += 1
            return narrow(as_float)
        if kind is str and _NUMBER_TEXT.match(value):
            counts["real_text"] += 1
            return narrow(float(value))
        raise Reject(f"{_describe(value)} {_short(value)} in a real column")

    return convert


def _numeric(column: TargetColumn, counts: Counter[str]) -> Converter:
    precision = scale = None
    if column.typmod >= 4:
        precision = ((column.typmod - 4) >> 16) & 0xFFFF
        scale = (column.typmod - 4) & 0xFFFF

    def fit(number: Decimal) -> Decimal:
        if not number.is_finite():
            if precision is not None:
                raise Reject(f"{number} does not fit {column.formatted}")
            return number
        try:  # asyncpg would send a value past numeric's range as 0
            check_numeric(number)
        except DataError:
            raise Reject(
                f"{str(number)[:40]} is outside numeric's range (131072 digits before the "
                "decimal point, 16383 after)"
            ) from None
        if scale is not None and precision is not None:
            quantum = Decimal(1).scaleb(-scale)
            fitted = number.quantize(quantum)
            if fitted != number:
                raise Reject(f"{number} has more than {scale} decimal places")
            if len(fitted.as_tuple().digits) > precision and fitted != 0:
                raise Reject(f"{number} does not fit {column.formatted}")
            return fitted
        return number

    def convert(value: Any) -> Any:
        kind = type(value)
        if kind is int:
            counts["num_int"] += 1
            return fit(Decimal(value))
        if kind is float:
            if math.isnan(value):
                raise Reject("NaN real in a numeric column")
            counts["num_real"] += 1
            return fit(Decimal(repr(value)) if math.isfinite(value) else Decimal(value))
        if kind is str and (_NUMBER_TEXT.match(value) or value in ("NaN", "Infinity", "-Infinity")):
            counts["num_text"] += 1
            try:
                return fit(Decimal(value))
            except InvalidOperation:
                pass
        raise Reject(f"{_describe(value)} {_short(value)} is not a number")

    return convert


def _text(column: TargetColumn, counts: Counter[str]) -> Converter:
    limit = column.typmod - 4 if column.type_name == "varchar" and column.typmod >= 4 else None

    def check(text: str) -> str:
        if "\x00" in text:
            raise Reject("text holds a NUL byte (PostgreSQL text cannot)")
        if limit is not None and len(text) > limit:
            raise Reject(f"{len(text)} characters exceed {column.formatted}")
        return text

    def convert(value: Any) -> Any:
        kind = type(value)
        if kind is str:
            return check(value)
        if kind is int:
            counts["text_int"] += 1
            return check(str(value))
        if kind is float:
            counts["text_real"] += 1
            return check(repr(value))
        if kind is bytes:
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise Reject(f"blob is not UTF-8 ({exc.reason} at byte {exc.start})") from None
            counts["text_blob"] += 1
            return check(text)
        raise Reject(f"{_describe(value)} in a text column")

    return convert


def _enum(column: TargetColumn, counts: Counter[str]) -> Converter:
    labels = frozenset(column.enum_labels)

    def convert(value: Any) -> Any:
        if type(value) is str and value in labels:
            return value
        raise Reject(
            f"{_describe(value)} {_short(value)} is not one of {', '.join(column.enum_labels)}"
        )

    return convert


def _bytea(column: TargetColumn, counts: Counter[str]) -> Converter:
    def convert(value: Any) -> Any:
        kind = type(value)
        if kind is bytes:
            return value
        if kind is str:
            counts["blob_text"] += 1
            return value.encode("utf-8")
        raise Reject(f"{_describe(value)} in a bytea column")

    return convert


def _refuse_constant(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


#: One decoder each (``json.loads`` with arguments builds a new decoder per call).
_STRICT_JSON = json.JSONDecoder(parse_constant=_refuse_constant)
DECIMAL_JSON = json.JSONDecoder(parse_float=Decimal)


class JsonText(str):
    """Validated jsonb text, as sent, with the document it parses to (numbers that are
    not integers as Decimal) in ``document``."""

    document: Any


_STRICT_DECIMAL_JSON = json.JSONDecoder(parse_float=Decimal, parse_constant=_refuse_constant)


def _jsonb_keeping_documents(column: TargetColumn, counts: Counter[str]) -> Converter:
    return _json(column, counts, keep_documents=True)


def _json(column: TargetColumn, counts: Counter[str], *, keep_documents: bool = False) -> Converter:
    binary = column.type_name == "jsonb"
    # Floats or Decimals: the same texts parse (and fail) either way.
    decode = (_STRICT_DECIMAL_JSON if keep_documents else _STRICT_JSON).decode
    duplicates: list[bool] = []
    if binary:
        # jsonb keeps one value per key and its own key order and spacing: a document it
        # respells is counted, one it loses a duplicate key's value from counted apart.

        def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
            found = dict(items)
            if len(found) != len(items):
                duplicates.append(True)
            return found

        decode = json.JSONDecoder(
            parse_float=Decimal, parse_constant=_refuse_constant, object_pairs_hook=pairs
        ).decode

    def check(text: str) -> str:
        try:
            parsed = decode(text)
        except (ValueError, RecursionError) as exc:
            duplicates.clear()
            raise Reject(f"invalid JSON: {exc}") from None
        if binary:
            if duplicates:
                duplicates.clear()
                counts["json_duplicate_keys"] += 1
            elif jsonb_text(parsed) != text:
                counts["json_respelled"] += 1
        if "\\u" in text:
            if binary and _JSON_NUL.search(text):
                raise Reject("JSON holds \\u0000 (jsonb cannot)")
            if "\\ud" in text or "\\uD" in text:  # a surrogate escape, maybe unpaired
                try:
                    json.dumps(_STRICT_JSON.decode(text), ensure_ascii=False).encode("utf-8")
                except UnicodeEncodeError:
                    raise Reject("JSON holds a lone surrogate escape") from None
        if "\x00" in text:
            raise Reject("JSON text holds a NUL byte")
        if keep_documents:
            kept = JsonText(text)
            kept.document = parsed
            return kept
        return text

    def convert(value: Any) -> Any:
        kind = type(value)
        if kind is str:
            return check(value)
        if kind is int or (kind is float and math.isfinite(value)):
            counts["json_number"] += 1
            return repr(value) if kind is float else str(value)
        if kind is bytes:
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                raise Reject("blob is not UTF-8 JSON") from None
            counts["json_blob"] += 1
            return check(text)
        raise Reject(f"{_describe(value)} {_short(value)} is not JSON")

    return convert


_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _uuid(column: TargetColumn, counts: Counter[str]) -> Converter:
    def convert(value: Any) -> Any:
        kind = type(value)
        if kind is str:
            try:
                parsed = uuid.UUID(value)
            except ValueError:
                raise Reject(f"text {_short(value)} is not a UUID") from None
            if str(parsed) != value:
                counts["uuid_text"] += 1
            return parsed
        if kind is bytes and len(value) == 16:
            counts["uuid_blob"] += 1
            return uuid.UUID(bytes=value)
        raise Reject(f"{_describe(value)} {_short(value)} is not a UUID")

    return convert


def _epoch(value: float, counts: Counter[str]) -> datetime:
    if not math.isfinite(value):
        raise Reject(f"{value!r} is not a point in time")
    if abs(value) < _EPOCH_S_LIMIT:
        counts["ts_epoch_s"] += 1
        seconds = value
    elif abs(value) < _EPOCH_MS_LIMIT:
        counts["ts_epoch_ms"] += 1
        seconds = value / 1000
    else:
        raise Reject(f"{value!r} is neither epoch seconds nor milliseconds")
    if isinstance(value, int):
        micros = value * (1_000_000 if abs(value) < _EPOCH_S_LIMIT else 1000)
        return EPOCH + timedelta(microseconds=micros)
    return EPOCH + timedelta(microseconds=round(seconds * 1_000_000))


def _timestamp(column: TargetColumn, counts: Counter[str]) -> Converter:
    zoned = column.type_name == "timestamptz"

    def parse_text(text: str) -> datetime:
        # ISO text always has a '-' after its first character; digits alone are epochs.
        if "-" not in text[1:] and _EPOCH_TEXT.match(text):
            return _epoch(float(text) if "." in text else int(text), counts)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise Reject(f"text {_short(text)} is not a timestamp") from None
        offset = parsed.utcoffset()
        if offset is None:
            counts["ts_date" if len(text) == 10 else "ts_naive"] += 1
            return EPOCH + (parsed - EPOCH_NAIVE)  # as UTC (faster than replace())
        if offset:
            counts["ts_zone"] += 1
            return parsed.astimezone(UTC)
        return parsed

    def convert(value: Any) -> Any:
        kind = type(value)
        try:
            if kind is str:
                moment = parse_text(value)
            elif kind is int or kind is float:
                moment = _epoch(value, counts)
            else:
                raise Reject(f"{_describe(value)} is not a timestamp")
        except OverflowError:
            raise Reject(f"{_short(value)} is out of the timestamp range") from None
        return moment if zoned else EPOCH_NAIVE + (moment - EPOCH)

    return convert


def _date(column: TargetColumn, counts: Counter[str]) -> Converter:
    def convert(value: Any) -> Any:
        if type(value) is str:
            try:
                if len(value) == 10:
                    return date.fromisoformat(value)
                moment = datetime.fromisoformat(value)
            except ValueError:
                raise Reject(f"text {_short(value)} is not a date") from None
            if moment.time() == datetime.min.time() and moment.utcoffset() in (None, timedelta()):
                counts["date_ts"] += 1
                return moment.date()
            raise Reject(f"timestamp {_short(value)} is not at midnight UTC")
        raise Reject(f"{_describe(value)} {_short(value)} is not a date")

    return convert


def _text_array(column: TargetColumn, counts: Counter[str]) -> Converter:
    def convert(value: Any) -> Any:
        if type(value) is str:
            try:
                items = json.loads(value)
            except ValueError:
                raise Reject(f"text {_short(value)} is not a JSON array") from None
            if isinstance(items, list) and all(i is None or type(i) is str for i in items):
                if any(i is not None and "\x00" in i for i in items):
                    raise Reject("array element holds a NUL byte")
                counts["array_json"] += 1
                return items
            raise Reject(f"text {_short(value)} is not a JSON array of strings")
        raise Reject(f"{_describe(value)} {_short(value)} is not an array")

    return convert


_BUILDERS: dict[str, Callable[[TargetColumn, Counter[str]], Converter]] = {
    "int2": _int,
    "int4": _int,
    "int8": _int,
    "bool": _bool,
    "float4": _float,
    "float8": _float,
    "numeric": _numeric,
    "text": _text,
    "varchar": _text,
    "bytea": _bytea,
    "json": _json,
    "jsonb": _json,
    "uuid": _uuid,
    "timestamptz": _timestamp,
    "timestamp": _timestamp,
    "date": _date,
    "_text": _text_array,
    "_varchar": _text_array,
}


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_rules(counts: Counter[str]) -> dict[str, int]:
    """``counts`` keyed by the rules' readable names."""
    return {RULES[k]: v for k, v in sorted(counts.items()) if v}
