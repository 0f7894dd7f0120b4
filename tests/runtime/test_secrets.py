"""A canary password in the DSN never appears in errors, reprs or logs."""

from __future__ import annotations

import logging
import socket
import traceback

import pytest

from aragora_db import connect
from aragora_repos import Config, ConnectionFailure, DatabaseError, ProgrammingError, Secret
from aragora_repos.postgres import PostgresDatabase
from tests.pg_server import with_database

CANARY = "CANARY-pw-7f3a9"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _everything(exc: BaseException) -> str:
    """Message, traceback, and the repr of every local in every frame outside this test
    file, for the exception and everything it chains to (cause and suppressed context)."""
    parts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        parts.append(repr(current))
        tb = current.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename != __file__:
                parts.extend(repr(v) for v in tb.tb_frame.f_locals.values())
            tb = tb.tb_next
        todo.extend([current.__cause__, current.__context__])
    return "\n".join(parts)


async def test_refused_connection(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    dsn = f"postgresql://app:{CANARY}@127.0.0.1:{_closed_port()}/db"
    with pytest.raises(ConnectionFailure) as info:
        await connect(Config(backend="postgres", dsn=Secret(dsn)))
    assert "app:***@127.0.0.1" in str(info.value)
    assert CANARY not in _everything(info.value)
    assert CANARY not in caplog.text


@pytest.mark.postgres
async def test_unknown_database_and_reprs(
    postgres_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    base = postgres_dsn.replace("postgresql://postgres@", f"postgresql://postgres:{CANARY}@")
    with pytest.raises(DatabaseError) as info:
        await connect(Config(backend="postgres", dsn=Secret(with_database(base, "nope_db"))))
    assert CANARY not in _everything(info.value)
    db = await connect(Config(backend="postgres", dsn=Secret(base)))
    try:
        assert isinstance(db.backend, PostgresDatabase)
        assert CANARY not in repr(db.backend) and "***" in repr(db.backend)
        with pytest.raises(ProgrammingError) as query_error:
            await db.backend.fetchrow("SELECT * FROM no_such_table", ())
        assert CANARY not in _everything(query_error.value)
    finally:
        await db.close()
    assert CANARY not in caplog.text
