"""Applying the generated migrations: a ``schema_version`` table per database.

Each pending migration runs in its own transaction together with its version row, so a
failure leaves the database at the previous version. An applied migration whose text
changed since is refused before any DDL runs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from aragora_repos.errors import MigrationError

SCHEMA_VERSION_POSTGRES = """CREATE TABLE IF NOT EXISTS schema_version (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    execution_ms DOUBLE PRECISION NOT NULL
)"""
SCHEMA_VERSION_SQLITE = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000+00:00', 'now')),
    execution_ms REAL NOT NULL
) STRICT"""
#: Key for pg_advisory_lock while migrating: the first 8 bytes of sha1("aragora_repos").
ADVISORY_LOCK_KEY = 0x0A7A_60A2_E905


@dataclass(frozen=True, slots=True)
class Migration:
    """One file of ``sql/schema``, in both dialects (see ``aragora_db.migrations``)."""

    version: int
    name: str
    checksum: str
    postgres_up: str
    postgres_down: str | None
    sqlite_up: str
    sqlite_down: str | None


def pending(migrations: Sequence[Migration], applied: Mapping[int, str]) -> list[Migration]:
    """The migrations still to apply; raise if the database disagrees with the code."""
    known = {m.version: m for m in migrations}
    for version, checksum in sorted(applied.items()):
        m = known.get(version)
        if m is None:
            raise MigrationError(
                f"cannot migrate: the database has version {version:04d}, "
                "which this code does not know (is the code older?)"
            )
        if m.checksum != checksum:
            raise MigrationError(
                f"cannot migrate: migration {version:04d}_{m.name} changed "
                "after it was applied (checksum differs)"
            )
    return [m for m in migrations if m.version not in applied]


def sqlite_statements(script: str) -> Iterator[str]:
    """Split a script into statements with ``sqlite3.complete_statement``.

    ``executescript`` would commit the open transaction first (cpython pysqlite#59), so
    statements are executed one by one inside the migration's transaction.
    """
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            buffer = ""
            if statement:
                yield statement
    if buffer.strip():
        yield buffer.strip()
