"""PostgreSQL's text output of jsonb and numeric values, computed in Python: the
canonical form verification compares (:mod:`.canonical`) and the test of whether a
document is stored as it was written (:mod:`.convert`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

_encode_string: Callable[[str], str] = json.encoder.encode_basestring


def numeric_text(value: Decimal) -> str:
    """numeric's text output: plain digits, no negative zero, NaN and the infinities."""
    if value.is_nan():
        return "NaN"
    if value.is_infinite():
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        value = abs(value)
    return format(value, "f")


def jsonb_text(value: Any) -> str:
    """PostgreSQL's text output of a jsonb value (parsed with Decimal for non-integers):
    object keys deduplicated (last wins) and ordered by byte length then bytes, ``", "``
    and ``": "`` separators, numbers as numeric prints them, strings escaped as
    ``escape_json`` does (the same set as Python's encoder without ``ensure_ascii``)."""
    kind = type(value)
    if kind is str:
        return _encode_string(value)
    if kind is int:
        return str(value)
    if kind is dict:
        keys = sorted(value, key=_key_order) if len(value) > 1 else value
        return "{" + ", ".join([f"{_encode_string(k)}: {jsonb_text(value[k])}" for k in keys]) + "}"
    if kind is list:
        return "[" + ", ".join([jsonb_text(v) for v in value]) + "]"
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is Decimal:
        return numeric_text(value)
    raise TypeError(kind.__name__)


def _key_order(key: str) -> tuple[int, bytes]:
    raw = key.encode("utf-8")
    return len(raw), raw
