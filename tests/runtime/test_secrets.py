"""A canary password in the DSN never appears in errors, reprs or logs."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import json
import logging
import socket
import traceback
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from aragora_db import connect
from aragora_db.__main__ import main as cli_main
from aragora_repos import (
    CommitOutcomeUnknown,
    Config,
    ConfigError,
    ConnectionFailure,
    DatabaseError,
    Migration,
    MigrationError,
    PoolTimeout,
    ProgrammingError,
    RetriesExhausted,
    Secret,
    TransactionConfig,
    TransactionTimeout,
    UniqueViolation,
    open_async,
)
from aragora_repos.backends.postgres import PostgresDatabase
from aragora_repos.migrations import Section
from tests.pg_server import fresh_database, terminate_during_commit, with_database

CANARY = "CANARY-pw-7f3a9"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it chains to (cause and suppressed context), once each."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend([current.__cause__, current.__context__])


def _everything(exc: BaseException) -> str:
    """Message, traceback, and the repr of every local in every frame outside this test
    file, for the exception and everything it chains to."""
    parts = ["".join(traceback.format_exception(exc))]
    for current in _chain(exc):
        parts.append(repr(current))
        tb = current.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename != __file__:
                parts.extend(repr(v) for v in tb.tb_frame.f_locals.values())
            tb = tb.tb_next
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


# --- every error path of the runtime, with the canary in the DSN ---------------------


def _with_password(dsn: str, password: str = CANARY) -> str:
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or "postgres"
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


def _locals_traceback(exc: BaseException) -> str:
    """What ``TracebackException(capture_locals=True)`` prints, for every exception in the
    chain, leaving out this file's own frames (whose locals hold the raw DSN on purpose)."""
    parts: list[str] = []
    for current in _chain(exc):
        frames = (
            (frame, line)
            for frame, line in traceback.walk_tb(current.__traceback__)
            if frame.f_code.co_filename != __file__
        )
        parts.extend(traceback.StackSummary.extract(frames, capture_locals=True).format())
        parts.extend(traceback.format_exception_only(current))
    return "".join(parts)


def _assert_clean(exc: BaseException) -> None:
    assert CANARY not in _everything(exc)
    assert CANARY not in _locals_traceback(exc)


@pytest.fixture
def canary_dsn(postgres_dsn: str) -> Iterator[str]:
    """A database of its own, reached with the canary as password (trust auth ignores it)."""
    with fresh_database(with_database(postgres_dsn, "postgres")) as dsn:
        yield _with_password(dsn)


@pytest.mark.postgres
async def test_canary_through_every_runtime_error_path(
    canary_dsn: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[BaseException] = []
    closed = _with_password(f"postgresql://app@127.0.0.1:{_closed_port()}/db")
    # Replicas: one unreachable, one that is the primary itself (not a standby).
    db = await PostgresDatabase.open(
        Secret(canary_dsn),
        min_size=1,
        max_size=1,
        pool_timeout=0.3,
        slow_query_ms=0.0,
        replicas=[Secret(closed), Secret(canary_dsn)],
        transaction_config=TransactionConfig(base_delay=0.001, max_delay=0.002),
    )
    try:
        assert all(not r.healthy and r.last_error for r in db.get_health_status().replicas)
        health = await db.get_database_health()
        # Pool exhausted: one connection, held by this context.
        async with db.transaction():
            waiter = asyncio.create_task(db.fetchrow("SELECT 1", ()), context=contextvars.Context())
            with pytest.raises(PoolTimeout) as pool_timeout:
                await waiter
            seen.append(pool_timeout.value)

        # Retries exhausted on server-raised serialization failures.
        async def always_conflicts() -> None:
            await db.execute(
                "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$", ()
            )

        with pytest.raises(RetriesExhausted) as exhausted:
            await db.run_in_transaction(always_conflicts, retries=2)
        seen.append(exhausted.value)

        # A transaction over its time limit, and a constraint violation inside one.
        with pytest.raises(TransactionTimeout) as too_long:
            async with db.transaction(timeout=0.1):
                await db.execute("SELECT pg_sleep(1)", ())
        seen.append(too_long.value)
        await db.execute("CREATE TABLE canary_items (id int PRIMARY KEY)", ())
        await db.execute("INSERT INTO canary_items VALUES (1)", ())
        with pytest.raises(UniqueViolation) as duplicate:
            async with db.transaction():
                await db.execute("INSERT INTO canary_items VALUES (1)", ())
        seen.append(duplicate.value)

        # The backend killed under an open transaction.
        admin = await asyncpg.connect(canary_dsn)
        try:
            with pytest.raises(ConnectionFailure) as killed:
                async with db.transaction():
                    pid = (await db.fetchrow("SELECT pg_backend_pid()", ()) or [0])[0]
                    # With a timeout, pg_terminate_backend returns once the backend exited.
                    assert await admin.fetchval("SELECT pg_terminate_backend($1, 10000)", pid)
                    await db.execute("INSERT INTO canary_items VALUES (2)", ())
            seen.append(killed.value)
            await _commit_outcome_unknown(db, admin, seen)
        finally:
            await admin.close()
        assert CANARY not in repr(db) + repr(health) + repr(db.get_health_status())
        assert CANARY not in json.dumps(dataclasses.asdict(health), default=str)
    finally:
        await db.close()

    # A failed migration.
    backend = await open_async(Config(backend="postgres", dsn=Secret(canary_dsn)))
    try:
        broken = Migration(
            1,
            "broken",
            "c1",
            Section(("CREATE TABLE canary_broken (id int)", "INSERT INTO missing VALUES (1)"), ()),
        )
        with pytest.raises(MigrationError) as failed:
            await backend.migrate([broken])
        seen.append(failed.value)
    finally:
        await backend.close()

    # Configuration errors that quote the DSN's variable.
    for env in (
        {"DATABASE_URL": canary_dsn, "ARAGORA_DB_POOL_SIZE": "many"},
        {"DATABASE_URL": canary_dsn.replace("postgresql://", "mysql://")},
        {"DATABASE_URL": _with_password("postgresql://app@db.example:notaport/x")},
        {"DATABASE_URL": canary_dsn, "ARAGORA_POSTGRES_REPLICAS": _with_password("x://a@:1/")},
    ):
        with pytest.raises(ConfigError) as bad_config:
            Config.from_env(env)
        seen.append(bad_config.value)
    config = Config.from_env({"DATABASE_URL": canary_dsn, "ARAGORA_POSTGRES_REPLICAS": closed})
    assert CANARY not in repr(config) + str(config)

    # The CLI on an unreachable server, an unknown database, and a healthy one.
    for argv in (
        ["--database-url", closed, "health"],
        ["--database-url", closed, "migrate", "status"],
        ["--database-url", with_database(canary_dsn, "no_such_db"), "check"],
        ["--database-url", canary_dsn, "health"],
    ):
        await asyncio.to_thread(cli_main, argv)
    out = capsys.readouterr()
    assert "***" in out.out + out.err
    assert CANARY not in out.out + out.err

    assert len(seen) == 11
    for exc in seen:
        _assert_clean(exc)
    assert "ejected" in caplog.text and "slow query" in caplog.text.lower()
    assert CANARY not in caplog.text
    for record in caplog.records:
        assert CANARY not in repr(record.__dict__)


async def _commit_outcome_unknown(
    db: PostgresDatabase, admin: asyncpg.Connection, seen: list[BaseException]
) -> None:
    """The connection dies with COMMIT in flight (a deferred trigger sleeps at COMMIT)."""
    await admin.execute(
        """
        CREATE FUNCTION canary_slow() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_sleep(2); RETURN NULL; END $$;
        CREATE CONSTRAINT TRIGGER canary_slow AFTER INSERT ON canary_items
          DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION canary_slow();
        """
    )

    async def insert() -> None:
        await db.execute("INSERT INTO canary_items VALUES (3)", ())

    kill = asyncio.create_task(terminate_during_commit(admin))
    with pytest.raises(CommitOutcomeUnknown) as unknown:
        await db.run_in_transaction(insert)
    await kill
    seen.append(unknown.value)
