"""Value conversions for SQLite storage, called inline by generated code.

The forms are documented in ``codegen/model/types.py``; PostgreSQL needs none of these
(asyncpg's codecs produce the same Python values).
"""

from __future__ import annotations

import functools
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from aragora_repos.errors import DataError

_MICRO = timedelta(microseconds=1)


def encode_timestamptz(value: datetime) -> str:
    """UTC text, fixed width: ``2024-01-15 10:30:00.000000+00:00``.

    A naive datetime is taken as UTC, as asyncpg does for ``timestamptz`` parameters.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.utcoffset():
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")


def decode_timestamptz(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def encode_timestamp(value: datetime) -> str:
    """Naive timestamp text; an aware value keeps its wall-clock time, as PostgreSQL does."""
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


# A JSON string, or a number written with an exponent (group 1).
_JSON_EXPONENT = re.compile(r'"(?:[^"\\]|\\.)*"|(-?\d+(?:\.\d+)?[eE][-+]?\d+)')
# What every exponent float repr contains (1e+20, 1.5e-07): a cheap test that skips the
# string-aware substitution for the usual document, whose strings merely contain an "e".
_EXPONENT_HINT = re.compile(r"\d[eE][-+]?\d")


def _plain_number(match: re.Match[str]) -> str:
    """jsonb keeps numbers as numeric and prints them without an exponent
    (1e+20 -> 100000000000000000000, 1e-07 -> 0.0000001); SQLite's copy does the same,
    so the value reads back as the same Python number on both backends."""
    number = match.group(1)
    return match.group(0) if number is None else format(Decimal(number), "f")


def encode_json(value: object) -> str | None:
    """SQLite's JSON text; Python ``None`` is SQL NULL, as asyncpg binds it, not ``null``."""
    return None if value is None else json_text(value)


def json_text(value: object) -> str:
    """Compact JSON text as jsonb would give it back; NaN and infinities are refused (as
    PostgreSQL's json types refuse them), and so is a ``\\u0000`` escape (22P05)."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        raise DataError(f"invalid json value: {exc}", sqlstate="22P02") from exc
    if _EXPONENT_HINT.search(text):
        text = _JSON_EXPONENT.sub(_plain_number, text)
    if "\\u0000" in text and _JSON_NUL.search(text):
        raise DataError("unsupported Unicode escape sequence \\u0000 in json", sqlstate="22P05")
    return text


_Number = TypeVar("_Number")

#: numeric's range: up to 131072 digits before the decimal point and 16383 after
#: (PostgreSQL's datatype-numeric.html; NUMERIC_WEIGHT_MAX, NUMERIC_DSCALE_MAX).
NUMERIC_INTEGER_DIGITS = 131072
NUMERIC_SCALE_MAX = 16383


def check_numeric(value: _Number) -> _Number:
    """A numeric argument, refused (22003) outside numeric's range as PostgreSQL's input
    refuses it. asyncpg's binary encoder sends a value past 131072 integer digits as 0,
    with no error (``Decimal("1E+131072")`` was stored as 0); a zero of any exponent is
    0. Another type passes through for the driver, as for :func:`check_text`."""
    if isinstance(value, Decimal):
        if value.is_finite():
            exponent = value.as_tuple().exponent
            assert isinstance(exponent, int)  # finite
            if exponent < -NUMERIC_SCALE_MAX or (
                not value.is_zero() and value.adjusted() >= NUMERIC_INTEGER_DIGITS
            ):
                raise DataError("value overflows numeric format", sqlstate="22003")
    elif (
        # asyncpg takes an int for numeric too, and sends one this large as 0 as well.
        isinstance(value, int)
        and value.bit_length() >= _LIMIT_BITS
        and abs(value) >= _numeric_limit()
    ):
        raise DataError("value overflows numeric format", sqlstate="22003")
    return value


#: The bit length of 10**131072, the first integer past numeric's range: a smaller
#: bit length is always in range.
_LIMIT_BITS = 435_412


@functools.cache
def _numeric_limit() -> int:
    limit: int = 10**NUMERIC_INTEGER_DIGITS
    return limit


def numeric_array(values: list[Decimal]) -> list[Decimal]:
    """A numeric array argument for PostgreSQL, each element checked by :func:`check_numeric`."""
    for value in values:
        check_numeric(value)  # a NULL element passes through
    return values


def encode_numeric(value: Decimal | int | float) -> str:
    """numeric text as PostgreSQL prints it: plain digits keeping the value's places
    (``Decimal("1E+3")`` is ``1000``), no negative zero, ``NaN`` and ``Infinity``; a value
    outside numeric's range is refused (22003) by :func:`check_numeric`. An int or a
    float is taken as asyncpg takes it for a numeric argument (``Decimal(value)``)."""
    if not isinstance(value, Decimal):
        value = Decimal(value)
    if value.is_finite():
        check_numeric(value)
        return format(value.copy_abs() if value.is_zero() else value, "f")
    if value.is_nan():
        return "NaN"  # a signalling NaN too, as asyncpg sends it
    return "Infinity" if value > 0 else "-Infinity"


def check_text(value: str) -> str:
    """PostgreSQL text cannot hold NUL (22021); SQLite could, so it is refused here too.

    A value of another type passes through for the driver to refuse, as asyncpg does.
    """
    if isinstance(value, str) and "\x00" in value:
        raise DataError('invalid byte sequence for encoding "UTF8": 0x00', sqlstate="22021")
    return value


def _element(value: object, expected: str) -> DataError:
    """PostgreSQL's driver refuses most array elements of the wrong type (asyncpg:
    "invalid array element"; a float for an integer it truncates, see :func:`int_array`);
    JSON would take any, so the element encoders refuse them here too."""
    return DataError(
        f"invalid input for query argument: invalid array element: expected {expected}, "
        f"got {type(value).__name__}",
        sqlstate="22000",
    )


def text_element(value: str) -> str:
    if not isinstance(value, str):
        raise _element(value, "str")
    return check_text(value)


def int2_element(value: int) -> int:
    if not isinstance(value, int):
        raise _element(value, "int")
    return check_int2(value)


def int4_element(value: int) -> int:
    if not isinstance(value, int):
        raise _element(value, "int")
    return check_int4(value)


def int8_element(value: int) -> int:
    if not isinstance(value, int):
        raise _element(value, "int")
    if not -(2**63) <= value < 2**63:
        raise DataError(f"value {value} out of bigint range", sqlstate="22003")
    return value


def int_array(values: list[int]) -> list[int]:
    """An integer array argument for PostgreSQL, checked: asyncpg truncates a float
    element (``[1.5]`` becomes ``[1]``, so ``id = ANY($1)`` matches row 1); refused here,
    as the SQLite side refuses it."""
    for value in values:
        if not isinstance(value, int):
            raise _element(value, "int")
    return values


def float_element(value: float) -> float:
    if not isinstance(value, int | float):
        raise _element(value, "float")
    return value


def check_int2(value: int) -> int:
    if isinstance(value, int) and not -32768 <= value <= 32767:
        raise DataError(f"value {value} out of smallint range", sqlstate="22003")
    return value


def check_int4(value: int) -> int:
    if isinstance(value, int) and not -2147483648 <= value <= 2147483647:
        raise DataError(f"value {value} out of integer range", sqlstate="22003")
    return value


def check_row_count(value: int) -> int:
    """LIMIT and OFFSET: PostgreSQL refuses negatives (2201W); SQLite reads -1 as 'all'."""
    if isinstance(value, int) and value < 0:
        raise DataError("LIMIT and OFFSET must not be negative", sqlstate="2201W")
    return value


def encode_interval(value: timedelta) -> int:
    return value // _MICRO


def decode_interval(value: int) -> timedelta:
    return timedelta(microseconds=value)
