"""PostgreSQL runtime on a real server: pool bounds, session reset across checkouts,
server-raised retryable errors, commit outcome unknown, cancellation, locks, LISTEN."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import random
from collections.abc import AsyncIterator

import asyncpg
import pytest

from aragora_repos import (
    CommitOutcomeUnknown,
    InterfaceError,
    OperationalError,
    PoolTimeout,
    RetriesExhausted,
    Secret,
    TransactionConfig,
    UniqueViolation,
)
from aragora_repos.backends.postgres import PostgresDatabase
from tests.pg_server import eventually, terminate_during_commit

pytestmark = pytest.mark.postgres

SETUP = """
CREATE TABLE IF NOT EXISTS rt_items (id int PRIMARY KEY, note text);
CREATE SEQUENCE IF NOT EXISTS rt_inject;
CREATE OR REPLACE FUNCTION rt_fail(state text, k int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF nextval('rt_inject') <= k THEN
    RAISE EXCEPTION 'injected %', state USING ERRCODE = state;
  END IF;
END $$;
"""

DROP = (
    "DROP TABLE IF EXISTS rt_items; DROP SEQUENCE IF EXISTS rt_inject; "
    "DROP FUNCTION IF EXISTS rt_fail(text, int)"
)


@pytest.fixture
async def pg(postgres_dsn: str) -> AsyncIterator[PostgresDatabase]:
    admin = await asyncpg.connect(postgres_dsn)
    await admin.execute(SETUP + "TRUNCATE rt_items; ALTER SEQUENCE rt_inject RESTART;")
    await admin.close()
    db = await PostgresDatabase.open(
        Secret(postgres_dsn),
        min_size=1,
        max_size=2,
        pool_timeout=0.5,
        transaction_config=TransactionConfig(base_delay=0.001),
    )
    yield db
    await db.close()
    # The session database is shared with other test files (the differential suite lists
    # its tables): leave nothing behind.
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(DROP)
    finally:
        await admin.close()


async def _restart_sequence(db: PostgresDatabase) -> None:
    await db.execute("ALTER SEQUENCE rt_inject RESTART", ())


@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
async def test_server_raised_retryable_errors_rerun_the_transaction(
    pg: PostgresDatabase, sqlstate: str
) -> None:
    for k in range(7):
        await _restart_sequence(pg)
        await pg.execute("TRUNCATE rt_items", ())
        attempts = 0

        async def work(k: int = k) -> None:
            nonlocal attempts
            attempts += 1
            await pg.execute("INSERT INTO rt_items VALUES ($1, 'x')", (attempts,))
            await pg.fetchrow("SELECT rt_fail($1, $2)", (sqlstate, k))

        if k <= 3:
            await pg.run_in_transaction(work, retries=3)
            rows = await pg.fetch("SELECT id FROM rt_items", ())
            assert [r[0] for r in rows] == [k + 1]
        else:
            with pytest.raises(RetriesExhausted) as info:
                await pg.run_in_transaction(work, retries=3)
            assert info.value.attempts == 4
            assert await pg.fetch("SELECT id FROM rt_items", ()) == []
        assert attempts == min(k + 1, 4)


@pytest.mark.parametrize("sqlstate", ["23505", "42P01", "57014", "55P03"])
async def test_server_raised_other_errors_run_once(pg: PostgresDatabase, sqlstate: str) -> None:
    await _restart_sequence(pg)
    attempts = 0

    async def work() -> None:
        nonlocal attempts
        attempts += 1
        await pg.fetchrow("SELECT rt_fail($1, 5)", (sqlstate,))

    with pytest.raises(Exception) as info:
        await pg.run_in_transaction(work, retries=3)
    assert attempts == 1
    assert getattr(info.value, "sqlstate", None) == sqlstate


async def test_savepoint_level_serialization_failure_restarts_the_outermost(
    pg: PostgresDatabase,
) -> None:
    await _restart_sequence(pg)
    runs = 0

    async def work() -> None:
        nonlocal runs
        runs += 1
        await pg.execute("INSERT INTO rt_items VALUES ($1, 'outer')", (runs,))
        try:
            async with pg.transaction():
                await pg.fetchrow("SELECT rt_fail('40001', 1)", ())
        except Exception:
            pass  # an application swallowing the error must not get a commit

    await pg.run_in_transaction(work)
    assert runs == 2
    rows = await pg.fetch("SELECT id FROM rt_items", ())
    assert [r[0] for r in rows] == [2]


async def test_the_pool_wait_is_bounded(pg: PostgresDatabase) -> None:
    async with pg.transaction(), pg.connection():
        # Outside this context (a task with a fresh context), with both connections taken.
        other = asyncio.create_task(pg.fetchrow("SELECT 1", ()), context=contextvars.Context())
        with pytest.raises(PoolTimeout, match=r"within 0\.5 s"):
            await other
    assert pg.pool_stats().timeouts == 1
    assert pg.pool_stats().waits >= 1
    assert (await pg.fetchrow("SELECT 2", ()) or [0])[0] == 2


#: A role of this test run's own; roles are cluster-wide on a possibly shared server.
ROLE = f"rt_role_{os.getpid()}"
LEAKS = {
    "guc": (
        "SET work_mem = '7MB'",
        "SELECT current_setting('work_mem') = '7MB'",
    ),
    "search_path": (
        "SET search_path = pg_catalog",
        "SELECT current_setting('search_path') = 'pg_catalog'",
    ),
    "role": (f"SET ROLE {ROLE}", f"SELECT current_user = '{ROLE}'"),
    "session_authorization": (
        f"SET SESSION AUTHORIZATION {ROLE}",
        f"SELECT session_user = '{ROLE}'",
    ),
    "temp_table": (
        "CREATE TEMP TABLE rt_tmp (x int)",
        "SELECT to_regclass('pg_temp.rt_tmp') IS NOT NULL",
    ),
    "prepared": (
        "PREPARE rt_prep AS SELECT 1",
        "SELECT count(*) > 0 FROM pg_prepared_statements WHERE name = 'rt_prep'",
    ),
    "listen": ("LISTEN rt_channel", "SELECT count(*) > 0 FROM pg_listening_channels()"),
    "advisory_lock": (
        "SELECT pg_advisory_lock(77)",
        "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
    ),
    "cursor": (
        "DECLARE rt_cur CURSOR WITH HOLD FOR SELECT 1",
        "SELECT count(*) > 0 FROM pg_cursors WHERE name = 'rt_cur'",
    ),
    "custom_setting": (
        "SELECT set_config('aragora.flag', 'on', false)",
        "SELECT coalesce(current_setting('aragora.flag', true), '') = 'on'",
    ),
}


async def test_session_state_does_not_leak_across_checkouts(postgres_dsn: str) -> None:
    admin = await asyncpg.connect(postgres_dsn)
    # A role of this run's own (roles are cluster-wide), dropped at the end.
    await admin.execute(f"CREATE ROLE {ROLE}; GRANT {ROLE} TO CURRENT_USER")
    db = await PostgresDatabase.open(Secret(postgres_dsn), min_size=1, max_size=1)
    leaked: list[str] = []
    try:
        for name, (setup, probe) in LEAKS.items():
            for how in ("connection", "transaction"):
                async with db.connection() as conn:
                    pid = await conn.fetchval("SELECT pg_backend_pid()")
                    if how == "connection":
                        await conn.execute(setup)
                if how == "transaction":
                    async with db.transaction():
                        await db.fetchrow(setup, ())
                async with db.connection() as conn:
                    assert await conn.fetchval("SELECT pg_backend_pid()") == pid
                    if await conn.fetchval(probe):
                        leaked.append(f"{name} via {how}")
    finally:
        await db.close()
        await admin.execute(f"DROP ROLE {ROLE}")
        await admin.close()
    assert leaked == []


async def test_a_released_connection_fails_loudly(pg: PostgresDatabase) -> None:
    async with pg.connection() as conn:
        assert await conn.fetchval("SELECT 1") == 1
    with pytest.raises(InterfaceError, match="released"):
        await conn.fetchval("SELECT 1")


async def test_connection_lost_during_commit_is_reported_and_not_retried(
    pg: PostgresDatabase, postgres_dsn: str
) -> None:
    # A deferred constraint trigger runs at COMMIT; it sleeps while another session
    # terminates the backend, so the connection dies with COMMIT in flight.
    admin = await asyncpg.connect(postgres_dsn)
    await admin.execute(
        """
        CREATE OR REPLACE FUNCTION rt_slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_sleep(2); RETURN NULL; END $$;
        DROP TRIGGER IF EXISTS rt_slow ON rt_items;
        CREATE CONSTRAINT TRIGGER rt_slow AFTER INSERT ON rt_items
          DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION rt_slow_commit();
        """
    )
    attempts = 0

    async def work() -> None:
        nonlocal attempts
        attempts += 1
        await pg.execute("INSERT INTO rt_items VALUES (1, 'maybe')", ())

    try:
        kill = asyncio.create_task(terminate_during_commit(admin))
        with pytest.raises(CommitOutcomeUnknown):
            await pg.run_in_transaction(work)
        await kill
        assert attempts == 1
        assert pg.transaction_stats.commit_unknown == 1
        # The caller settles it by key: here the server had not committed.
        assert await pg.fetch("SELECT id FROM rt_items", ()) == []
    finally:
        await admin.execute("DROP TRIGGER IF EXISTS rt_slow ON rt_items")
        await admin.close()


async def test_cancellation_at_every_step_leaves_no_open_transaction(postgres_dsn: str) -> None:
    db = await PostgresDatabase.open(Secret(postgres_dsn), min_size=2, max_size=2)
    admin = await asyncpg.connect(postgres_dsn)
    await admin.execute(SETUP + "TRUNCATE rt_items")
    rng = random.Random(11)
    handed_out_in_tx = 0
    try:
        for step in range(60):

            async def work(step: int = step) -> None:
                async with db.transaction():
                    await db.execute("INSERT INTO rt_items VALUES ($1, 'a')", (step,))
                    await db.fetchrow("SELECT pg_sleep(0.001)", ())
                    async with db.transaction():
                        await db.execute("UPDATE rt_items SET note = 'b' WHERE id = $1", (step,))
                    await db.fetchrow("SELECT count(*) FROM rt_items", ())

            task = asyncio.create_task(work())
            # Cancel after `step` loop iterations, then at random times in the same range.
            if step < 30:
                for _ in range(step):
                    await asyncio.sleep(0)
            else:
                await asyncio.sleep(rng.uniform(0, 0.01))
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            async with db.connection() as conn:
                if conn.raw.is_in_transaction() or await conn.fetchval(
                    "SELECT txid_current_if_assigned() IS NOT NULL"
                ):
                    handed_out_in_tx += 1
        # A terminated session leaves the server's view when its backend has exited.
        idle_sql = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%'"
        )

        async def none_idle_in_transaction() -> bool:
            return bool(await admin.fetchval(idle_sql) == 0)

        await eventually(none_idle_in_transaction, "no session idle in a transaction")
        idle_in_tx = await admin.fetchval(idle_sql)
        # Every committed row is whole: inserted and updated together or not at all.
        partial = await admin.fetchval("SELECT count(*) FROM rt_items WHERE note <> 'b'")
    finally:
        await admin.execute(DROP)
        await admin.close()
        await db.close()
    assert (handed_out_in_tx, idle_in_tx, partial) == (0, 0, 0)


async def test_advisory_lock_excludes_and_times_out(pg: PostgresDatabase) -> None:
    order: list[str] = []
    held, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with pg.advisory_lock(99):
            order.append("held")
            held.set()
            await release.wait()
            order.append("released")

    task = asyncio.create_task(holder())
    await held.wait()
    with pytest.raises(OperationalError, match="still held") as info:
        async with pg.advisory_lock(99, timeout=0.05):
            pass
    assert info.value.sqlstate == "55P03"
    release.set()
    await task
    async with pg.advisory_lock(99, timeout=1):
        order.append("second")
    assert order == ["held", "released", "second"]
    async with pg.transaction(), pg.advisory_lock(100):
        locks = await pg.fetchrow(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
            (),
        )
        assert locks is not None and locks[0] == 1


async def test_listen_and_notify(pg: PostgresDatabase) -> None:
    async with pg.listen("rt_events") as events:
        await pg.notify("rt_events", "hello")
        async with pg.transaction():
            await pg.notify("rt_events", "after commit")
        first = await events.get(timeout=2)
        second = await events.get(timeout=2)
    assert (first.channel, first.payload, second.payload) == ("rt_events", "hello", "after commit")


async def test_unique_violation_inside_run_in_transaction_is_not_retried(
    pg: PostgresDatabase,
) -> None:
    await pg.execute("INSERT INTO rt_items VALUES (5, 'x')", ())
    attempts = 0

    async def work() -> None:
        nonlocal attempts
        attempts += 1
        await pg.execute("INSERT INTO rt_items VALUES (5, 'y')", ())

    with pytest.raises(UniqueViolation):
        await pg.run_in_transaction(work)
    assert attempts == 1
