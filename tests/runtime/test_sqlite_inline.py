"""Inline single-row reads on SQLite: served by the read-only connection outside
transactions, by the writer inside them, and by the writer when the reader is busy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aragora_db import UserRole, connect
from aragora_repos import Config, DatabaseBusy
from aragora_repos.backends.sqlite import AsyncSqliteDatabase, SqliteConnection
from aragora_repos.backends.sqlite.database import HEAVY_AFTER


async def test_reader_serves_reads_and_falls_back_when_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No inline budget: the first read after a migration loads the schema, which can take
    # longer than the budget on a busy machine (that fallback is tested below).
    db = await connect(Config(data_dir=tmp_path, sqlite_inline_budget_ms=None))
    await db.migrate()
    backend = db.backend
    assert isinstance(backend, AsyncSqliteDatabase) and backend.reader is not None
    await db.users.create_user(
        id="u1",
        email="a@b.c",
        password_hash="h",
        password_salt="s",
        name="Ann",
        org_id=None,
        role=UserRole.MEMBER,
    )
    used: list[str] = []
    original = SqliteConnection.fetchone

    def spy(self: SqliteConnection, sql: str, args: Any) -> Any:
        used.append("reader" if self is backend.reader else "writer")
        if self is backend.reader and busy:
            raise DatabaseBusy("database is locked", sqlstate="55P03")
        return original(self, sql, args)

    monkeypatch.setattr(SqliteConnection, "fetchone", spy)
    busy = False
    user = await db.users.get_user_by_id(id="u1")
    assert user is not None and used == ["reader"]
    busy = True
    used.clear()
    user = await db.users.get_user_by_id(id="u1")
    assert user is not None and user.name == "Ann" and used == ["reader", "writer"]
    busy = False
    used.clear()
    async with db.transaction():
        await db.users.get_user_by_id(id="u1")
    assert used == ["writer"]
    with pytest.raises(Exception, match=r"readonly|read-only|attempt to write"):
        backend.reader.execute("DELETE FROM users", ())
    await db.close()


async def test_a_read_past_the_inline_budget_runs_on_the_writer_instead(tmp_path: Path) -> None:
    """An aggregate over a large table is interrupted on the event loop's thread (its
    budget here 0.2 ms) and answered from the writer's thread, with the same result; the
    query then goes to the writer directly. A key lookup stays inline."""
    db = await connect(Config(data_dir=tmp_path, sqlite_inline_budget_ms=0.2))
    await db.migrate()
    backend = db.backend
    assert isinstance(backend, AsyncSqliteDatabase) and backend.reader is not None
    rows = [(f"u{i}", f"u{i}@x", "h", "s", "", "member", 1 if i % 3 else 0) for i in range(60_000)]
    await backend.run(
        backend.connection.executemany,
        "INSERT INTO users (id, email, password_hash, password_salt, name, role, is_active) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    reads = backend.reader.queries
    for n in range(1, HEAVY_AFTER + 1):  # tried inline, interrupted, answered by the writer
        assert await db.users.count_active_users() == 40_000
        assert (backend.inline_fallbacks, backend.reader.queries) == (n, reads + n)
    # Past its budget that often, the query goes to the writer directly.
    assert await db.users.count_active_users() == 40_000
    assert (backend.inline_fallbacks, backend.reader.queries) == (3, reads + 3)
    user = await db.users.get_user_by_id(id="u7")
    assert user is not None and backend.reader.queries == reads + 4  # a lookup: inline
    await db.close()


async def test_without_a_budget_every_read_stays_inline(tmp_path: Path) -> None:
    db = await connect(Config(data_dir=tmp_path, sqlite_inline_budget_ms=None))
    await db.migrate()
    backend = db.backend
    assert isinstance(backend, AsyncSqliteDatabase) and backend.reader is not None
    await backend.run(
        backend.connection.executemany,
        "INSERT INTO users (id, email, password_hash, password_salt, name, role) "
        "VALUES (?, ?, ?, ?, '', 'member')",
        [(f"u{i}", f"u{i}@x", "h", "s") for i in range(20_000)],
    )
    assert await db.users.count_active_users() == 20_000
    assert backend.inline_fallbacks == 0
    await db.close()


def test_a_single_row_read_past_the_slow_query_bound_is_logged_failed_or_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The single-row read checks the slow-query bound inline (its hot path): a read
    past it is logged by name, and so is one that fails."""
    conn = SqliteConnection(tmp_path / "slow.db", slow_query_ms=0.0)
    try:
        with caplog.at_level("WARNING"):
            assert conn.fetchone("-- name: Fine :one\nSELECT 1", ()) == (1,)
            with pytest.raises(Exception, match="no such table"):
                conn.fetchone("-- name: Broken :one\nSELECT * FROM nowhere", ())
        assert "slow query Fine on sqlite" in caplog.text
        assert "slow query Broken on sqlite" in caplog.text
        caplog.clear()
        conn.slow_ms = None
        with caplog.at_level("WARNING"):
            conn.fetchone("-- name: Fine :one\nSELECT 1", ())
        assert "slow query" not in caplog.text
    finally:
        conn.close()
