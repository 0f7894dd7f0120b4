"""SQL functions every SQLite connection of a project database has, for what SQLite's
own date functions cannot do as PostgreSQL does.

SQLite's clock has millisecond resolution and its date arithmetic rounds to
milliseconds; PostgreSQL keeps microseconds, and ``now()`` is the time the transaction
started. The generated SQLite statements therefore call:

- ``aragora_now()``: the current time as canonical timestamptz text
  (``YYYY-MM-DD HH:MM:SS.ffffff+00:00``, microseconds), the same value for every call
  within one transaction (or one statement outside a transaction), as ``now()`` is;
- ``aragora_ts_add(ts, seconds)``: ``ts`` plus a number of seconds, exact to the
  microsecond, in ``ts``'s own form (naive ``timestamp`` text stays naive);
- ``aragora_date_trunc(unit, ts)``: ``date_trunc`` in ``ts``'s own form.

A tool that writes to a project database with its own :mod:`sqlite3` connection calls
:func:`install` first; a statement using one of these without it fails with ``no such
function`` (nothing is written wrong).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

NAIVE_LENGTH = len("2024-01-15 10:30:00.000000")
_TRUNC = ("year", "month", "day", "hour", "minute", "second")


def now_text() -> str:
    return datetime.now(UTC).isoformat(" ", "microseconds")


class Clock:
    """``aragora_now()`` of one connection: one value until :meth:`reset`, which the
    connection calls when a transaction begins and before each statement outside one."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: str | None = None

    def reset(self) -> None:
        self.value = None

    def __call__(self) -> str:
        if self.value is None:
            self.value = now_text()
        return self.value


def _parse(text: str) -> tuple[datetime, bool]:
    value = datetime.fromisoformat(text)
    return value, value.tzinfo is None


def _form(value: datetime, naive: bool) -> str:
    if naive:
        return value.replace(tzinfo=None).isoformat(" ", "microseconds")
    return value.astimezone(UTC).isoformat(" ", "microseconds")


def ts_add(text: str | None, seconds: float | int | None) -> str | None:
    if text is None or seconds is None:
        return None
    value, naive = _parse(str(text))
    micros = round(seconds * 1_000_000)
    return _form(value + timedelta(microseconds=micros), naive)


def date_trunc(unit: str | None, text: str | None) -> str | None:
    if unit is None or text is None:
        return None
    value, naive = _parse(str(text))
    if not naive:
        value = value.astimezone(UTC)
    keep = _TRUNC.index(unit.lower().rstrip("s"))
    y, mo, d, h, mi, sec = (
        value.year,
        value.month if keep >= 1 else 1,
        value.day if keep >= 2 else 1,
        value.hour if keep >= 3 else 0,
        value.minute if keep >= 4 else 0,
        value.second if keep >= 5 else 0,
    )
    return _form(datetime(y, mo, d, h, mi, sec, tzinfo=value.tzinfo), naive)


def install(conn: sqlite3.Connection, clock: Clock | None = None) -> None:
    """Register the functions on ``conn``; ``clock`` (default: a fresh value per call)
    gives ``aragora_now()``."""
    conn.create_function("aragora_now", 0, clock or now_text, deterministic=False)
    conn.create_function("aragora_ts_add", 2, ts_add, deterministic=True)
    conn.create_function("aragora_date_trunc", 2, date_trunc, deterministic=True)
