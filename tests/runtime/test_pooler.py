"""Behind a real PgBouncer in transaction mode (Supabase's pooler has its semantics): the
generated repositories work from many tasks at once with ``pooler=transaction``, what
needs a session goes to the direct DSN or is refused saying what to set, and without the
setting the failure the mode exists for is real."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from aragora_db import Database
from aragora_db.models import UserRole
from aragora_repos import Config, ConfigError, DatabaseError, Secret, open_async
from tests.pg_server import fresh_database
from tests.pgbouncer import pgbouncer

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def direct(postgres_dsn: str) -> Iterator[str]:
    with fresh_database(postgres_dsn) as dsn:
        yield dsn


@pytest.fixture(scope="module")
def pooled(direct: str) -> Iterator[str]:
    with pgbouncer(direct, "transaction", pool_size=4) as dsn:
        yield dsn


def _config(dsn: str, *, pooler: str = "transaction", direct: str | None = None) -> Config:
    return Config(
        backend="postgres",
        dsn=Secret(dsn),
        pool_max=8,
        pooler=pooler,  # type: ignore[arg-type]
        direct_dsn=Secret(direct) if direct else None,
    )


async def _work(db: Database, worker: int) -> int:
    done = 0
    for i in range(25):
        user = f"u{worker}-{i}"
        await db.users.create_user(
            id=user,
            email=f"{user}@example.com",
            password_hash="h",
            password_salt="s",
            name=user,
            org_id=None,
            role=UserRole.MEMBER,
        )
        got = await db.users.get_user_by_id(id=user)
        assert got is not None and got.email == f"{user}@example.com"

        async def touch(user: str = user) -> None:
            await db.users.record_failed_login(max_attempts=5, lockout_minutes=1, id=user)

        await db.run_in_transaction(touch, timeout=5.0)  # SET LOCAL timeouts
        done += 1
    return done


async def test_migrations_go_to_the_direct_dsn_or_are_refused(pooled: str, direct: str) -> None:
    refused = Database(await open_async(_config(pooled)))
    try:
        with pytest.raises(ConfigError, match="ARAGORA_POSTGRES_DIRECT_DSN"):
            await refused.migrate()
        with pytest.raises(ConfigError, match="LISTEN on events"):
            async with refused.listen("events"):
                pass
        with pytest.raises(ConfigError, match="advisory lock 7 outside a transaction"):
            async with refused.advisory_lock(7):
                pass
        async with refused.transaction(), refused.advisory_lock(7):  # a transaction lock
            pass
    finally:
        await refused.close()
    db = Database(await open_async(_config(pooled, direct=direct)))
    try:
        assert await db.migrate()  # through the direct connection
        async with db.listen("events") as events:
            await db.notify("events", "hello")
            assert (await events.get(timeout=5)).payload == "hello"
    finally:
        await db.close()


async def test_many_tasks_through_the_transaction_pooler(pooled: str, direct: str) -> None:
    db = Database(await open_async(_config(pooled, direct=direct)))
    try:
        await db.migrate()
        done = await asyncio.gather(*(_work(db, w) for w in range(8)))
    finally:
        await db.close()
    assert done == [25] * 8


async def test_without_the_setting_named_statements_collide(pooled: str, direct: str) -> None:
    """The failure the mode exists for: asyncpg's named prepared statements meet other
    clients' on the pooler's shared server sessions."""
    db = Database(await open_async(_config(pooled, pooler="none")))
    failures: list[BaseException] = []

    async def work(worker: int) -> None:
        try:
            await _work(db, 100 + worker)
        except DatabaseError as exc:
            failures.append(exc)

    try:
        await asyncio.gather(*(work(w) for w in range(8)))
    finally:
        await db.close()
    assert failures, "named statements through a transaction pooler should have collided"
    assert any("prepared statement" in str(f) for f in failures), failures[:3]


async def test_a_pooler_refusal_never_shows_the_password(pooled: str) -> None:
    canary = "CANARY-pooler-77b2"
    db = Database(await open_async(_config(pooled.replace("postgres@", f"postgres:{canary}@"))))
    try:
        with pytest.raises(ConfigError) as info:
            await db.migrate()
        assert canary not in f"{info.value} {info.value!r} {db.backend!r}"
    finally:
        await db.close()


async def test_a_pooler_is_noticed_from_the_servers_answers(
    postgres_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The backend a statement runs on is not the one the connection was told of: a
    pooler answered the startup. Unset ARAGORA_POSTGRES_POOLER, that is said at startup."""
    from aragora_repos.backends.postgres import PostgresDatabase
    from aragora_repos.backends.postgres.database import note_pooler

    with fresh_database(postgres_dsn) as dsn, pgbouncer(dsn, "transaction") as pooled:
        direct = await PostgresDatabase.open(Secret(dsn))
        try:
            assert await note_pooler(direct._lender.pool, "none") is False
        finally:
            await direct.close()
        with caplog.at_level(logging.WARNING, logger="aragora_repos.postgres"):
            behind = await PostgresDatabase.open(Secret(pooled), pooler="none")
            await behind.close()
        assert "set ARAGORA_POSTGRES_POOLER=transaction" in caplog.text
