"""Array and jsonb operators, and ``extract()``, on SQLite's storage forms (arrays and
jsonb are JSON text, timestamps canonical text), answering as PostgreSQL does.

- ``aragora_array_contains(a, b)`` is ``a @> b`` (``b <@ a``): every element of ``b`` is
  in ``a``, duplicates ignored, and a NULL element is in nothing
  (``arrayfuncs.c: array_contain_compare``); ``aragora_array_overlaps(a, b)`` is ``&&``;
- ``aragora_jsonb_contains(a, b)`` is jsonb ``@>`` (``jsonb_util.c: JsonbDeepContains``):
  objects by key, arrays by element, scalars by value (``1 = 1.0``, ``true <> 1``), and a
  top-level array contains a scalar;
- ``aragora_jsonb_exists(j, key)``, ``..._any``, ``..._all`` are ``?``, ``?|``, ``?&``: an
  object's top-level key, an array's string element, a string scalar itself;
- ``aragora_extract(field, value)`` is ``extract(field FROM value)`` as numeric text with
  PostgreSQL's scale (``second``: 6 places, ``milliseconds``: 3, ``epoch``: 6 for a
  timestamp, none for a date), for timestamps in either form, dates and times; an interval
  (microseconds on SQLite) has its ``epoch`` only, since its day and month parts are not
  kept.

Every function is strict, as the operators are: NULL in, NULL out.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from aragora_repos.errors import DatabaseError, DataError, from_sqlstate


def _json(text: object) -> Any:
    try:
        return json.loads(str(text), parse_float=Decimal)
    except ValueError as exc:
        raise DataError(f"invalid input syntax for type json: {exc}", sqlstate="22P02") from exc
    except RecursionError:
        raise from_sqlstate(
            "54001", "json nested too deeply to evaluate on sqlite (about 900 levels)"
        ) from None


def _array(text: object) -> list[Any]:
    value = _json(text)
    if not isinstance(value, list):
        raise DataError("array value must be a JSON array on sqlite", sqlstate="22P02")
    return _flat(value)


def _flat(values: list[Any]) -> list[Any]:
    """A multidimensional array's elements, as PostgreSQL's operators see them."""
    out: list[Any] = []
    for v in values:
        out.extend(_flat(v) if isinstance(v, list) else (v,))
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal scalars of the same JSON kind (Python has True == 1)."""
    return type(a) is type(b) or (
        isinstance(a, int | Decimal)
        and isinstance(b, int | Decimal)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    )


def _equal(a: Any, b: Any) -> bool:
    return _same(a, b) and a == b


def _scalar_in(value: Any, values: list[Any]) -> bool:
    return any(_equal(value, v) for v in values if v is not None)


def array_contains(a: object, b: object) -> int | None:
    if a is None or b is None:
        return None
    have = _array(a)
    return int(all(v is not None and _scalar_in(v, have) for v in _array(b)))


def array_overlaps(a: object, b: object) -> int | None:
    if a is None or b is None:
        return None
    other = _array(b)
    return int(any(v is not None and _scalar_in(v, other) for v in _array(a)))


def _contains(a: Any, b: Any) -> bool:
    if isinstance(b, dict):
        return isinstance(a, dict) and all(
            key in a and _contains_value(a[key], value) for key, value in b.items()
        )
    if isinstance(b, list):
        if not isinstance(a, list):
            return False
        scalars = [v for v in a if not isinstance(v, dict | list)]
        containers = [v for v in a if isinstance(v, dict | list)]
        for value in b:
            if isinstance(value, dict | list):
                if not any(_contains(c, value) for c in containers):
                    return False
            elif not any(_equal(value, s) for s in scalars):
                return False
        return True
    return _equal(a, b)


def _contains_value(a: Any, b: Any) -> bool:
    """A value nested in an object: the structure must match (no scalar in an array)."""
    if isinstance(b, dict | list) or isinstance(a, dict | list):
        return type(a) is type(b) and _contains(a, b)
    return _equal(a, b)


def jsonb_contains(a: object, b: object) -> int | None:
    if a is None or b is None:
        return None
    left, right = _json(a), _json(b)
    if isinstance(left, list) and not isinstance(right, dict | list):
        return int(_contains(left, [right]))  # an array contains a top-level scalar
    if isinstance(right, dict | list) != isinstance(left, dict | list):
        return 0
    return int(_contains(left, right))


def _has_key(value: Any, key: str) -> bool:
    if isinstance(value, dict):
        return key in value
    if isinstance(value, list):
        return any(isinstance(v, str) and v == key for v in value)
    return isinstance(value, str) and value == key


def jsonb_exists(j: object, key: object) -> int | None:
    if j is None or key is None:
        return None
    return int(_has_key(_json(j), str(key)))


def _keys(keys: object) -> list[str]:
    return [str(k) for k in _array(keys) if k is not None]


def jsonb_exists_any(j: object, keys: object) -> int | None:
    if j is None or keys is None:
        return None
    value = _json(j)
    return int(any(_has_key(value, k) for k in _keys(keys)))


def jsonb_exists_all(j: object, keys: object) -> int | None:
    if j is None or keys is None:
        return None
    value = _json(j)
    return int(all(_has_key(value, k) for k in _keys(keys)))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_DATE_FIELDS = frozenset(
    {"day", "month", "quarter", "week", "year", "decade", "century", "millennium"}
    | {"isoyear", "dow", "isodow", "doy", "epoch", "julian"}
)
_TIME_FIELDS = frozenset({"hour", "minute", "second", "milliseconds", "microseconds", "epoch"})
_ALIASES = {
    "years": "year", "months": "month", "days": "day", "hours": "hour", "mins": "minute",
    "minutes": "minute", "min": "minute", "secs": "second", "seconds": "second",
    "sec": "second", "ms": "milliseconds", "msec": "milliseconds",
    "millisecond": "milliseconds", "us": "microseconds", "usec": "microseconds",
    "microsecond": "microseconds", "decades": "decade", "centuries": "century",
    "millennia": "millennium", "millenniums": "millennium", "weeks": "week",
    "quarters": "quarter", "y": "year", "d": "day", "h": "hour", "m": "minute",
    "s": "second", "mon": "month", "mons": "month",
}  # fmt: skip


def _unsupported(unit: str, type_name: str) -> DatabaseError:
    return from_sqlstate("0A000", f'unit "{unit}" not supported for type {type_name}')


def _seconds(micros: int, places: int) -> str:
    return format(Decimal(micros).scaleb(-6).quantize(Decimal(1).scaleb(-places)), "f")


def _date_part(unit: str, d: date) -> int:
    year = d.year
    if unit == "day":
        return d.day
    if unit == "month":
        return d.month
    if unit == "quarter":
        return (d.month - 1) // 3 + 1
    if unit == "week":
        return d.isocalendar().week
    if unit == "year":
        return year
    if unit == "isoyear":
        return d.isocalendar().year
    if unit == "decade":
        return year // 10
    if unit == "century":
        return (year + 99) // 100
    if unit == "millennium":
        return (year + 999) // 1000
    if unit == "dow":
        return d.isoweekday() % 7
    if unit == "isodow":
        return d.isoweekday()
    if unit == "doy":
        return d.timetuple().tm_yday
    if unit == "julian":
        return d.toordinal() + 1721425
    raise _unsupported(unit, "date")


def _time_part(unit: str, t: time) -> str:
    micros = ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond
    if unit == "hour":
        return str(t.hour)
    if unit == "minute":
        return str(t.minute)
    if unit == "second":
        return _seconds(t.second * 1_000_000 + t.microsecond, 6)
    if unit == "milliseconds":
        return _seconds((t.second * 1_000_000 + t.microsecond) * 1000, 3)
    if unit == "microseconds":
        return str(t.second * 1_000_000 + t.microsecond)
    if unit == "epoch":
        return _seconds(micros, 6)
    raise _unsupported(unit, "time without time zone")


def extract(field: object, value: object) -> str | None:
    if field is None or value is None:
        return None
    unit = str(field).lower()
    unit = _ALIASES.get(unit, unit)
    if isinstance(value, int):  # an interval, in microseconds
        if unit != "epoch":
            raise _unsupported(unit, "interval on sqlite (its days and months are not kept)")
        return _seconds(value, 6)
    try:
        return _extract(unit, str(value))
    except ValueError as exc:  # not a date, time or timestamp in a storage form
        raise DataError(
            f"invalid input syntax for a date or time: {str(value)[:40]!r}", sqlstate="22007"
        ) from exc


def _extract(unit: str, text: str) -> str:
    if len(text) == 10 and text[4] == "-":
        d = date.fromisoformat(text)
        if unit == "epoch":
            return str((d - date(1970, 1, 1)).days * 86400)
        return str(_date_part(unit, d))
    if len(text) >= 8 and text[2] == ":":
        return _time_part(unit, time.fromisoformat(text))
    moment = datetime.fromisoformat(text)
    naive = moment.tzinfo is None
    if unit in ("timezone", "timezone_hour", "timezone_minute"):
        if naive:
            raise _unsupported(unit, "timestamp without time zone")
        return "0"  # sessions are pinned to UTC
    if unit == "epoch":
        delta = moment.replace(tzinfo=UTC) - _EPOCH if naive else moment - _EPOCH
        return _seconds(delta // _MICRO, 6)
    if unit == "julian":
        raise _unsupported(unit, "timestamp on sqlite")
    if unit in _TIME_FIELDS:
        return _time_part(unit, moment.time())
    if unit in _DATE_FIELDS:
        return str(_date_part(unit, moment.date()))
    raise DataError(f'unit "{unit}" not recognized', sqlstate="22023")


def date_part(field: object, value: object) -> float | None:
    """``date_part('field', value)``: the same value as double precision."""
    number = extract(field, value)
    return None if number is None else float(number)
