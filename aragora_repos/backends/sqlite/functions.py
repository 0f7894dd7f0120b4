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
- ``aragora_date_trunc(unit, ts)``: ``date_trunc`` in ``ts``'s own form;
- ``aragora_like(text, pattern[, escape])`` and ``aragora_ilike(...)``: PostgreSQL's LIKE
  and ILIKE, matched as its own matcher does (``like_match.c``), so a pattern ending in
  the escape character fails exactly where PostgreSQL's fails, and ILIKE folds every
  letter (SQLite's ``lower()`` folds ASCII only).

Numeric arithmetic and order (:mod:`.numeric`), array and jsonb containment and
``extract()`` (:mod:`.containers`) are registered here too.

A function's own error (an invalid LIKE pattern) is kept by
:func:`aragora_repos.errors.keeping_errors` and raised by ``errors.from_sqlite`` instead of
SQLite's "user-defined function raised exception".

A tool that writes to a project database with its own :mod:`sqlite3` connection calls
:func:`install` first; a statement using one of these without it fails with ``no such
function`` (nothing is written wrong).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from aragora_repos.backends.sqlite import containers, numeric
from aragora_repos.errors import DataError, keeping_errors

NAIVE_LENGTH = len("2024-01-15 10:30:00.000000")
_TRUNC = ("year", "month", "day", "hour", "minute", "second")


def now_text() -> str:
    return datetime.now(UTC).isoformat(" ", "microseconds")


class Clock:
    """``aragora_now()`` of one connection: one value for as long as ``key()`` gives the
    same answer (the connection's transaction, else its statement), or, without a key,
    until :meth:`reset`. The key is read only when a statement calls now()."""

    __slots__ = ("key", "seen", "value")

    def __init__(self, key: Callable[[], object] | None = None) -> None:
        self.key = key
        self.seen: object = None
        self.value: str | None = None

    def reset(self) -> None:
        self.value = None

    def __call__(self) -> str:
        if self.key is not None:
            current = self.key()
            if current != self.seen:
                self.seen, self.value = current, None
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


_FALSE, _TRUE, _ABORT = 0, 1, -1


def _match(t: str, p: str, esc: str | None) -> int:
    """PostgreSQL's MatchText (src/backend/utils/adt/like_match.c): TRUE, FALSE, or ABORT
    (no match possible for any shorter text)."""
    ti, pi, tn, pn = 0, 0, len(t), len(p)
    if p == "%":
        return _TRUE
    while ti < tn and pi < pn:
        c = p[pi]
        if c == esc:
            pi += 1
            if pi >= pn:
                raise DataError("LIKE pattern must not end with escape character", sqlstate="22025")
            if p[pi] != t[ti]:
                return _FALSE
        elif c == "%":
            pi += 1
            while pi < pn:
                if p[pi] == "%":
                    pi += 1
                elif p[pi] == "_":
                    if ti >= tn:
                        return _ABORT
                    ti += 1
                    pi += 1
                else:
                    break
            if pi >= pn:
                return _TRUE
            if p[pi] == esc:
                if pi + 1 >= pn:
                    raise DataError(
                        "LIKE pattern must not end with escape character", sqlstate="22025"
                    )
                first = p[pi + 1]
            else:
                first = p[pi]
            while ti < tn:
                if t[ti] == first:
                    found = _match(t[ti:], p[pi:], esc)
                    if found != _FALSE:
                        return found
                ti += 1
            return _ABORT
        elif c == "_":
            pass
        elif c != t[ti]:
            return _FALSE
        ti += 1
        pi += 1
    if ti < tn:
        return _FALSE
    while pi < pn and p[pi] == "%":
        pi += 1
    return _TRUE if pi >= pn else _ABORT


def _escape(escape: str | None) -> str | None:
    if escape is None:
        return "\\"
    if escape == "":
        return None  # ESCAPE '': no escape character
    if len(escape) != 1:
        raise DataError("invalid escape string", sqlstate="22025")
    return escape


def like(text: str | None, pattern: str | None, escape: str | None = None) -> int | None:
    if text is None or pattern is None:
        return None
    return int(_match(str(text), str(pattern), _escape(escape)) == _TRUE)


def ilike(text: str | None, pattern: str | None, escape: str | None = None) -> int | None:
    if text is None or pattern is None:
        return None
    return int(_match(str(text).lower(), str(pattern).lower(), _escape(escape)) == _TRUE)


class Retention:
    """The retention cutoff of one connection's current transaction: append-only tables'
    DELETE trigger calls ``aragora_retention_allows(ts)``, true only for a row older than
    the cutoff ``aragora_set_retention_cutoff(text)`` set in the same transaction (the
    clock's key tells transactions apart). Without a keyed clock (another tool's
    connection) nothing is ever allowed."""

    __slots__ = ("clock", "cutoff", "key")

    def __init__(self, clock: Clock | None) -> None:
        self.clock = clock if clock is not None and clock.key is not None else None
        self.key: object = None
        self.cutoff: str | None = None

    def set(self, cutoff: str | None) -> int:
        if self.clock is None or cutoff is None:
            return 0
        assert self.clock.key is not None
        self.key, self.cutoff = self.clock.key(), str(cutoff)
        return 1

    def allows(self, value: str | None) -> int:
        if self.clock is None or self.cutoff is None or value is None:
            return 0
        assert self.clock.key is not None
        if self.clock.key() != self.key:
            self.cutoff = None
            return 0
        # Canonical timestamptz text is fixed width UTC: it orders as the times do.
        return int(str(value) < self.cutoff)


def install(conn: sqlite3.Connection, clock: Clock | None = None) -> None:
    """Register the functions on ``conn``; ``clock`` (default: a fresh value per call)
    gives ``aragora_now()`` and tells its transactions apart for retention."""
    retention = Retention(clock)
    conn.create_function("aragora_set_retention_cutoff", 1, retention.set, deterministic=False)
    conn.create_function("aragora_retention_allows", 1, retention.allows, deterministic=False)
    conn.create_function("aragora_now", 0, clock or now_text, deterministic=False)
    conn.create_function("aragora_ts_add", 2, ts_add, deterministic=True)
    conn.create_function("aragora_date_trunc", 2, date_trunc, deterministic=True)
    for name, fn in (("aragora_like", like), ("aragora_ilike", ilike)):
        kept = keeping_errors(fn)
        conn.create_function(name, 2, kept, deterministic=True)
        conn.create_function(name, 3, kept, deterministic=True)
    binary: dict[str, Callable[[object, object], object]] = {
        "aragora_array_contains": containers.array_contains,
        "aragora_array_overlaps": containers.array_overlaps,
        "aragora_jsonb_contains": containers.jsonb_contains,
        "aragora_jsonb_exists": containers.jsonb_exists,
        "aragora_jsonb_exists_any": containers.jsonb_exists_any,
        "aragora_jsonb_exists_all": containers.jsonb_exists_all,
        "aragora_extract": containers.extract,
        "aragora_date_part": containers.date_part,
    }
    for name, function in binary.items():
        conn.create_function(name, 2, keeping_errors(function), deterministic=True)
    numeric.install(conn)
