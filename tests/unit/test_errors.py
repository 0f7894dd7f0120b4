"""Driver errors map by code, never by message, to one tree with PostgreSQL SQLSTATEs."""

from __future__ import annotations

import sqlite3

import pytest

from aragora_repos import errors


@pytest.mark.parametrize(
    ("sqlstate", "cls"),
    [
        ("23505", errors.UniqueViolation),
        ("23503", errors.ForeignKeyViolation),
        ("23502", errors.NotNullViolation),
        ("23514", errors.CheckViolation),
        ("23P01", errors.IntegrityError),
        ("40001", errors.SerializationFailure),
        ("40P01", errors.DeadlockDetected),
        ("22021", errors.DataError),
        ("42P01", errors.ProgrammingError),
        ("08006", errors.ConnectionFailure),
        ("57P01", errors.ConnectionFailure),
        ("57014", errors.OperationalError),
        ("XX000", errors.DatabaseError),
    ],
)
def test_sqlstate_mapping(sqlstate: str, cls: type[errors.DatabaseError]) -> None:
    error = errors.from_sqlstate(sqlstate, "message")
    assert type(error) is cls
    assert error.sqlstate == sqlstate


@pytest.fixture
def conn() -> sqlite3.Connection:
    c = sqlite3.connect(":memory:", isolation_level=None)
    c.execute("PRAGMA foreign_keys = ON")
    c.execute("CREATE TABLE p (id INTEGER PRIMARY KEY) STRICT")
    c.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, u TEXT UNIQUE, n INTEGER NOT NULL, "
        "p INTEGER REFERENCES p (id), CHECK (n >= 0)) STRICT"
    )
    c.execute("INSERT INTO t (id, u, n) VALUES (1, 'a', 1)")
    return c


@pytest.mark.parametrize(
    ("sql", "cls", "sqlstate"),
    [
        ("INSERT INTO t (id, u, n) VALUES (2, 'a', 1)", errors.UniqueViolation, "23505"),
        ("INSERT INTO t (id, u, n) VALUES (1, 'b', 1)", errors.UniqueViolation, "23505"),
        ("INSERT INTO t (id, u, n, p) VALUES (2, 'b', 1, 9)", errors.ForeignKeyViolation, "23503"),
        ("INSERT INTO t (id, u) VALUES (2, 'b')", errors.NotNullViolation, "23502"),
        ("INSERT INTO t (id, u, n) VALUES (2, 'b', -1)", errors.CheckViolation, "23514"),
        ("INSERT INTO t (id, u, n) VALUES (2, 'b', 'x')", errors.DataError, "22P02"),
        ("SELECT * FROM missing", errors.ProgrammingError, "42000"),
    ],
)
def test_sqlite_mapping(
    conn: sqlite3.Connection, sql: str, cls: type[errors.DatabaseError], sqlstate: str
) -> None:
    with pytest.raises(sqlite3.Error) as info:
        conn.execute(sql)
    error = errors.from_sqlite(info.value)
    assert type(error) is cls
    assert error.sqlstate == sqlstate
