"""A target database of its own per test, and SQLite sources built from SQL text."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from tests.pg_server import fresh_database, with_database


@pytest.fixture
def target_dsn(postgres_dsn: str) -> Iterator[str]:
    with fresh_database(with_database(postgres_dsn, "postgres")) as dsn:
        yield dsn


def make_sqlite(path: Path, script: str, rows: Mapping[str, Sequence[Sequence[object]]]) -> Path:
    db = sqlite3.connect(path)
    db.executescript(script)
    for table, values in rows.items():
        if values:
            marks = ", ".join("?" * len(values[0]))
            db.executemany(f"INSERT INTO {table} VALUES ({marks})", values)
    db.commit()
    db.close()
    return path
