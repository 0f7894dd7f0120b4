"""Value conversions for SQLite storage, called inline by generated code.

The forms are documented in ``codegen/model/types.py``; PostgreSQL needs none of these
(asyncpg's codecs produce the same Python values).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

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


def encode_json(value: object) -> str:
    """Compact JSON text; NaN and infinities are refused, as PostgreSQL's json type does."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode_interval(value: timedelta) -> int:
    return value // _MICRO


def decode_interval(value: int) -> timedelta:
    return timedelta(microseconds=value)
