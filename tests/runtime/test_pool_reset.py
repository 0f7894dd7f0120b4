"""The pool's reset policy: single statements skip the reset round trip; transactions
still leave no session state behind; a cancelled statement leaves a usable connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from aragora_repos import Secret
from aragora_repos.backends.postgres import PostgresDatabase
from tests.pg_server import eventually

pytestmark = pytest.mark.postgres


@pytest.fixture
async def one(postgres_dsn: str) -> AsyncIterator[PostgresDatabase]:
    db = await PostgresDatabase.open(Secret(postgres_dsn), min_size=1, max_size=1)
    yield db
    await db.close()


async def _backend_pid(db: PostgresDatabase) -> int:
    row = await db.fetchrow("SELECT pg_backend_pid()", ())
    assert row is not None
    return int(row[0])


async def test_single_statements_skip_the_reset_round_trip(one: PostgresDatabase) -> None:
    pid = await _backend_pid(one)
    # Outside a transaction no reset query runs on release (asyncpg's default would send
    # RESET ALL and clear this); the same backend serves the next call.
    await one.fetchrow("SELECT set_config('aragora.kept', 'yes', false)", ())
    row = await one.fetchrow("SELECT current_setting('aragora.kept', true), pg_backend_pid()", ())
    assert row is not None and (row[0], row[1]) == ("yes", pid)


async def test_transaction_release_resets_session_state(one: PostgresDatabase) -> None:
    async with one.transaction():
        await one.fetchrow("SELECT set_config('aragora.test', 'leak', false)", ())
        await one.fetchrow("SELECT pg_advisory_lock(4242)", ())
    row = await one.fetchrow(
        "SELECT current_setting('aragora.test', true), "
        "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
        "AND pid = pg_backend_pid())",
        (),
    )
    assert row is not None and (row[0] or "", row[1]) == ("", 0)


async def test_cancelled_statement_leaves_a_usable_connection(
    one: PostgresDatabase, postgres_dsn: str
) -> None:
    task = asyncio.create_task(one.fetchrow("SELECT pg_sleep(5)", ()))
    admin = await asyncpg.connect(postgres_dsn)
    try:

        async def sleeping() -> bool:
            return bool(
                await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state = 'active' AND query = 'SELECT pg_sleep(5)'"
                )
            )

        await eventually(sleeping, "the statement to be running on the server")
    finally:
        await admin.close()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    row = await asyncio.wait_for(one.fetchrow("SELECT 41 + 1", ()), timeout=3)
    assert row is not None and row[0] == 42
    async with one.transaction():
        inner = await one.fetchrow("SELECT txid_current_if_assigned() IS NULL", ())
    assert inner is not None and inner[0] is True
