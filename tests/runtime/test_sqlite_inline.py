"""Inline single-row reads on SQLite: served by the read-only connection outside
transactions, by the writer inside them, and by the writer when the reader is busy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aragora_db import UserRole, connect
from aragora_repos import Config, DatabaseBusy
from aragora_repos.backends.sqlite import AsyncSqliteDatabase, SqliteConnection


async def test_reader_serves_reads_and_falls_back_when_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = await connect(Config(data_dir=tmp_path))
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
