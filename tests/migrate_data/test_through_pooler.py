"""migrate-data through a real PgBouncer in transaction mode (Supabase's pooler on port
6543 has its semantics). Found by running it there: with a pool of 5 the run failed with
``prepared statement "__asyncpg_stmt_…__" does not exist`` (its connections prepared
statements under names the next transaction's server connection did not have), and
with a pool of 1 it waited on itself until PgBouncer's ``query_wait_timeout`` (the run's
lock holds the only server connection for the run)."""

from __future__ import annotations

import time
from pathlib import Path

import asyncpg
import pytest

from aragora_repos import errors
from aragora_repos.config import Secret
from aragora_repos.tools.migrate_data import migrate_data, target
from tests.migrate_data.conftest import make_sqlite
from tests.pgbouncer import pgbouncer

pytestmark = pytest.mark.postgres

SCHEMA = """
CREATE TABLE authors (id BIGINT PRIMARY KEY, name TEXT NOT NULL, meta JSONB);
CREATE TABLE posts (
    id BIGINT PRIMARY KEY,
    author_id BIGINT NOT NULL REFERENCES authors (id),
    body TEXT,
    created_at TIMESTAMPTZ
);
"""


def _source(folder: Path) -> Path:
    return make_sqlite(
        folder / "s.db",
        "CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT, meta TEXT);"
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, author_id INTEGER, body TEXT,"
        " created_at TEXT);",
        {
            "authors": [(i, f"a'{i}", f'{{"k": {i}, "k": 2}}') for i in range(1, 401)],
            "posts": [
                # 0 is an orphan: rejected by the copy, by the same rule on every path
                (i, i % 400, f"p{i}\n", f"2026-01-0{1 + i % 9}T10:00:00Z")
                for i in range(1, 20001)
            ],
        },
    )


async def _schema(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA)
    finally:
        await conn.close()


async def _stored(dsn: str) -> tuple[int, int, str]:
    conn = await asyncpg.connect(dsn)
    try:
        return (
            await conn.fetchval("SELECT count(*) FROM authors"),
            await conn.fetchval("SELECT count(*) FROM posts"),
            await conn.fetchval("SELECT meta::text FROM authors WHERE id = 7"),
        )
    finally:
        await conn.close()


@pytest.mark.parametrize("columnar", [True, False], ids=["columnar", "row path"])
@pytest.mark.parametrize("pool_size", [2, 5])
async def test_a_run_through_a_transaction_pooler_copies_and_verifies(
    tmp_path: Path, target_dsn: str, pool_size: int, columnar: bool
) -> None:
    await _schema(target_dsn)
    source = _source(tmp_path)
    with pgbouncer(target_dsn, "transaction", pool_size=pool_size) as pooled:
        report = await migrate_data(
            source,
            pooled,
            pooler="transaction",
            verify=True,
            batch_size=500,
            columnar=columnar,
        )
    assert report.verified is True, report.render()
    assert (report.tables["authors"].migrated, report.tables["posts"].migrated) == (400, 19950)
    assert report.tables["posts"].errors == 50
    assert report.foreign_keys  # added back, validated, through the pooler
    assert await _stored(target_dsn) == (400, 19950, '{"k": 2}')


async def test_a_pool_too_small_for_the_run_is_refused_in_time_and_nothing_is_written(
    tmp_path: Path, target_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pool of one server connection: the lock's transaction holds it, so the run's
    copy connection would wait for it until the pooler gives up (120 s by default).
    It is refused after POOL_WAIT, saying what it needs, and leaves the pool free."""
    monkeypatch.setattr(target, "POOL_WAIT", 1.0)
    await _schema(target_dsn)
    source = _source(tmp_path)
    with pgbouncer(target_dsn, "transaction", pool_size=1) as pooled:
        started = time.monotonic()
        with pytest.raises(errors.MigrationError, match="at least 2 per run") as raised:
            await migrate_data(source, pooled, pooler="transaction", verify=True)
        # Well before PgBouncer's own query_wait_timeout, whatever the machine's speed.
        assert time.monotonic() - started < 60
        assert "ARAGORA_POSTGRES_DIRECT_DSN" in str(raised.value)
        # The lock's transaction ended with the run: the one server connection is free.
        conn = await asyncpg.connect(pooled, statement_cache_size=0)
        try:
            assert await conn.fetchval("SELECT to_regclass('aragora_migrate.progress')") is None
            assert await conn.fetchval("SELECT count(*) FROM authors") == 0
        finally:
            await conn.close()


async def test_with_a_direct_dsn_the_lock_takes_nothing_from_the_pool(
    tmp_path: Path, target_dsn: str
) -> None:
    """The same pool of one, with ``ARAGORA_POSTGRES_DIRECT_DSN``: the lock is taken on
    the server itself and the copies share the pool's one connection."""
    await _schema(target_dsn)
    source = _source(tmp_path)
    with pgbouncer(target_dsn, "transaction", pool_size=1) as pooled:
        report = await migrate_data(
            source, pooled, pooler="transaction", direct_dsn=target_dsn, verify=True
        )
    assert report.verified is True, report.render()
    assert await _stored(target_dsn) == (400, 19950, '{"k": 2}')


async def test_a_second_run_through_the_pooler_is_refused(tmp_path: Path, target_dsn: str) -> None:
    """The lock is one transaction on one server connection, so a run through the pooler
    sees another run's lock whichever server connection it is given."""
    await _schema(target_dsn)
    source = _source(tmp_path)
    holder = await asyncpg.connect(target_dsn)
    try:
        await holder.execute("BEGIN")
        await holder.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            target.run_lock_name(str(source.resolve())),
        )
        with (
            pgbouncer(target_dsn, "transaction", pool_size=3) as pooled,
            pytest.raises(errors.MigrationError, match="another run is copying"),
        ):
            await migrate_data(source, pooled, pooler="transaction")
    finally:
        await holder.close()
    assert (await _stored(target_dsn))[:2] == (0, 0)


def test_an_unknown_pooler_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match="pooler must be one of"):
        target.Target(Secret("postgresql://u:canary-pw@h/db"), "statement")


async def test_a_session_pooler_holds_a_server_connection_per_connection_of_the_run(
    tmp_path: Path, target_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In session mode every connection of the run keeps a server connection: a pool of
    6 holds the verified run whole, one of 3 is refused in time, saying so."""
    monkeypatch.setattr(target, "POOL_WAIT", 1.0)
    await _schema(target_dsn)
    source = _source(tmp_path)
    with (
        pgbouncer(target_dsn, "session", pool_size=3) as pooled,
        pytest.raises(errors.MigrationError, match="at least 6 per run"),
    ):
        await migrate_data(source, pooled, pooler="session", verify=True)
    conn = await asyncpg.connect(target_dsn)
    try:  # refused before any foreign key was set aside for the copy
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM pg_constraint WHERE conrelid = 'posts'::regclass "
                "AND contype = 'f'"
            )
            == 1
        )
    finally:
        await conn.close()
    with pgbouncer(target_dsn, "session", pool_size=6) as pooled:
        report = await migrate_data(source, pooled, pooler="session", verify=True)
    assert report.verified is True, report.render()
    assert await _stored(target_dsn) == (400, 19950, '{"k": 2}')


async def test_the_command_takes_the_pooler_from_the_environment(
    tmp_path: Path, target_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``aragora-repos migrate-data`` with ``DATABASE_URL`` at the pooler and
    ``ARAGORA_POSTGRES_POOLER=transaction``: the run that failed on prepared statements."""
    import asyncio

    from aragora_db.__main__ import main as cli_main

    await _schema(target_dsn)
    source = _source(tmp_path)
    with pgbouncer(target_dsn, "transaction", pool_size=5) as pooled:
        monkeypatch.setenv("DATABASE_URL", pooled)
        monkeypatch.setenv("ARAGORA_POSTGRES_POOLER", "transaction")
        monkeypatch.delenv("ARAGORA_POSTGRES_DIRECT_DSN", raising=False)
        code = await asyncio.to_thread(
            cli_main,
            ["migrate-data", "--sqlite-path", str(source), "--verify", "--batch-size", "150"],
        )
    assert code == 3  # the 50 orphans went to the reject file; the rest is verified
    assert await _stored(target_dsn) == (400, 19950, '{"k": 2}')


async def test_a_canary_password_never_shows_on_the_pooler_paths(
    tmp_path: Path,
    target_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """T22 on what this module adds: the pool-too-small refusal and a direct DSN that
    cannot be reached, each with a canary password (PgBouncer's trust mode takes any)."""
    import logging

    from tests.pg_server import free_port

    canary = "pw-CANARY-/#?@:x"
    encoded = "pw-CANARY-%2F%23%3F%40%3Ax"
    monkeypatch.setattr(target, "POOL_WAIT", 1.0)
    await _schema(target_dsn)
    source = _source(tmp_path)
    caplog.set_level(logging.DEBUG)
    with pgbouncer(target_dsn, "transaction", pool_size=1) as pooled:
        with_password = pooled.replace("postgres@", f"postgres:{encoded}@", 1)
        with pytest.raises(errors.MigrationError) as small:
            await migrate_data(source, with_password, pooler="transaction")
        unreachable = f"postgresql://postgres:{encoded}@127.0.0.1:{free_port()}/x"
        with pytest.raises(errors.DatabaseError) as direct:
            await migrate_data(source, with_password, pooler="transaction", direct_dsn=unreachable)
    for text in (str(small.value), repr(small.value), str(direct.value), caplog.text):
        assert canary not in text and encoded not in text
    assert "pw-CANARY" not in "".join(
        str(getattr(e, "__context__", "")) for e in (small.value, direct.value)
    )


async def test_two_runs_at_once_through_the_pooler_copy_each_row_once(
    tmp_path: Path, target_dsn: str
) -> None:
    """T21 through PgBouncer: two runs of one source started together. One waits for the
    other's lock and then finds nothing left to copy, or is refused; the rows are stored
    once and no row is recorded as a duplicate reject."""
    import asyncio

    await _schema(target_dsn)
    source = _source(tmp_path)
    with pgbouncer(target_dsn, "transaction", pool_size=6) as pooled:
        results = await asyncio.gather(
            *(migrate_data(source, pooled, pooler="transaction", batch_size=500) for _ in "ab"),
            return_exceptions=True,
        )
    reports = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(e, errors.MigrationError) and "another run" in str(e) for e in refused), (
        refused
    )
    assert reports
    assert sum(r.tables["posts"].migrated for r in reports) == 19950
    # A run that finds the copy done reports the rejects recorded before it.
    assert all(r.tables["posts"].errors == 50 for r in reports)
    assert await _stored(target_dsn) == (400, 19950, '{"k": 2}')
    conn = await asyncpg.connect(target_dsn)
    try:  # the orphans recorded once, none of the other run's rows as duplicates
        assert await conn.fetchval("SELECT count(*) FROM aragora_migrate.rejects") == 50
    finally:
        await conn.close()
