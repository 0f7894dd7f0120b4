"""Transactions on both backends: savepoints, Rollback, the state machine, isolation,
timeouts, run_in_transaction and its counters."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from aragora_db import MIGRATIONS, Database, UserRole
from aragora_db.schema import EXPECTED
from aragora_repos import (
    DatabaseBusy,
    DeadlockDetected,
    InterfaceError,
    Isolation,
    NotSupportedError,
    RetriesExhausted,
    Rollback,
    SerializationFailure,
    TransactionError,
    TransactionTimeout,
    TxState,
    UniqueViolation,
)
from aragora_repos.backends.postgres import PostgresDatabase
from aragora_repos.backends.sqlite import AsyncSqliteDatabase
from aragora_repos.retry import backoff
from aragora_repos.transaction import TransactionStats


async def _user(db: Database, n: int) -> None:
    await db.users.create_user(
        id=f"u{n}",
        email=f"u{n}@example.com",
        password_hash="h",
        password_salt="s",
        name=f"User {n}",
        org_id=None,
        role=UserRole.MEMBER,
    )


async def _ids(db: Database) -> list[str]:
    users = await db.users.get_users_by_ids(ids=[f"u{n}" for n in range(10)])
    return sorted(u.id for u in users)


def _is_pg(db: Database) -> bool:
    return isinstance(db.backend, PostgresDatabase)


async def test_nested_blocks_are_savepoints(db: Database) -> None:
    async with db.transaction():
        await _user(db, 1)
        with pytest.raises(UniqueViolation):
            async with db.transaction():
                await _user(db, 2)
                await _user(db, 1)  # duplicate: only this savepoint rolls back
        await _user(db, 3)
    assert await _ids(db) == ["u1", "u3"]


async def test_rollback_exception_exits_the_innermost_block(db: Database) -> None:
    async with db.transaction() as tx:
        await _user(db, 1)
        async with db.savepoint("before_two") as sp:
            await _user(db, 2)
            raise Rollback
        assert sp.state is TxState.ROLLED_BACK and sp.name == "before_two"
        await _user(db, 3)
    assert tx.state is TxState.COMMITTED
    async with db.transaction() as outer:
        await _user(db, 4)
        raise Rollback
    assert outer.state is TxState.ROLLED_BACK
    assert await _ids(db) == ["u1", "u3"]


async def test_the_state_machine_refuses_misuse(db: Database) -> None:
    with pytest.raises(InterfaceError, match="no transaction is open"):
        async with db.savepoint("orphan"):
            pass
    with pytest.raises(InterfaceError, match="expected letters"):
        db.savepoint('x"; DROP TABLE users; --')
    tx = db.transaction()
    async with tx:
        with pytest.raises(InterfaceError, match="twice"):
            async with tx:
                pass
        with pytest.raises(TransactionError, match="nested"):
            async with db.transaction(isolation=Isolation.SERIALIZABLE):
                pass
        # A task created inside the block inherits the context but not the connection.
        child = asyncio.create_task(db.users.count_active_users())
        with pytest.raises(InterfaceError, match="another task"):
            await child
    assert tx.state is TxState.COMMITTED
    with pytest.raises(InterfaceError, match="twice"):
        async with tx:
            pass


async def test_a_statement_after_the_block_fails_loudly(db: Database) -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    async with db.transaction():

        async def late() -> None:
            started.set()
            await release.wait()
            await _user(db, 7)

        task = asyncio.create_task(late())
        await started.wait()
    release.set()
    with pytest.raises(InterfaceError, match="transaction is committed"):
        await task
    assert await _ids(db) == []


async def test_isolation_levels(db: Database) -> None:
    if not _is_pg(db):
        for level in (Isolation.READ_COMMITTED, Isolation.REPEATABLE_READ):
            with pytest.raises(TransactionError, match="always serializable"):
                db.transaction(isolation=level)
        async with db.transaction(isolation=Isolation.SERIALIZABLE, deferrable=True):
            await _user(db, 1)
        assert await _ids(db) == ["u1"]
        return
    backend = db.backend
    assert isinstance(backend, PostgresDatabase)
    for level in Isolation:
        for readonly in (False, True):
            async with db.transaction(isolation=level, readonly=readonly, deferrable=readonly):
                row = await backend.fetchrow(
                    "SELECT current_setting('transaction_isolation'), "
                    "current_setting('transaction_read_only'), "
                    "current_setting('transaction_deferrable')",
                    (),
                )
            assert row is not None
            assert tuple(row) == (
                level.sql.lower(),
                "on" if readonly else "off",
                "on" if readonly else "off",
            )


async def test_a_timeout_rolls_back_and_raises(db: Database) -> None:
    with pytest.raises(TransactionTimeout):
        async with db.transaction(timeout=0.3):
            await _user(db, 1)
            await asyncio.sleep(2)
    assert await _ids(db) == []
    assert db.transaction_stats.timeouts == 1
    if _is_pg(db):
        # The server-side bound applies to statements too.
        backend = db.backend
        assert isinstance(backend, PostgresDatabase)
        with pytest.raises(TransactionTimeout):
            async with db.transaction(timeout=0.3):
                await backend.fetchrow("SELECT pg_sleep(3)", ())
    async with db.transaction():
        await _user(db, 2)
    assert await _ids(db) == ["u2"]


async def test_run_in_transaction_rolls_back_each_failed_attempt(db: Database) -> None:
    attempts = 0

    async def work() -> str:
        nonlocal attempts
        attempts += 1
        await _user(db, attempts)
        if attempts < 3:
            raise SerializationFailure("injected", sqlstate="40001")
        return "done"

    assert await db.run_in_transaction(work, base_delay=0.001) == "done"
    assert attempts == 3
    assert await _ids(db) == ["u3"]  # the writes of attempts 1 and 2 were rolled back
    stats = db.transaction_stats
    assert (stats.started, stats.committed, stats.rolled_back, stats.retried) == (3, 1, 2, 2)
    assert stats.serialization_failures == 2


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (SerializationFailure("x", sqlstate="40001"), True),
        (DeadlockDetected("x", sqlstate="40P01"), True),
        (DatabaseBusy("x", sqlstate="55P03"), True),
        (UniqueViolation("x", sqlstate="23505"), False),
        (TransactionError("x", sqlstate="25P02"), False),
    ],
)
async def test_attempt_counts(db: Database, error: Exception, retryable: bool) -> None:
    for k in range(5):
        attempts = 0

        async def work(k: int = k) -> int:
            nonlocal attempts
            attempts += 1
            if attempts <= k:
                raise error
            return attempts

        retries = 3
        if not retryable and k > 0:
            with pytest.raises(type(error)):
                await db.run_in_transaction(work, retries=retries, base_delay=0.0)
            assert attempts == 1
        elif k > retries:
            with pytest.raises(RetriesExhausted) as info:
                await db.run_in_transaction(work, retries=retries, base_delay=0.0)
            assert attempts == info.value.attempts == retries + 1
            assert info.value.__cause__ is error
        else:
            assert await db.run_in_transaction(work, retries=retries, base_delay=0.0) == k + 1
            assert attempts == k + 1


async def test_nested_failure_restarts_the_outermost_transaction(db: Database) -> None:
    outer_runs = 0

    async def inner() -> None:
        if outer_runs == 1:
            raise SerializationFailure("injected", sqlstate="40001")

    async def outer() -> None:
        nonlocal outer_runs
        outer_runs += 1
        await _user(db, outer_runs)
        # Nested, it runs once in a savepoint; swallowing the failure must not let the
        # outer transaction commit.
        with contextlib.suppress(SerializationFailure):
            await db.run_in_transaction(inner)

    await db.run_in_transaction(outer, base_delay=0.0)
    assert outer_runs == 2
    assert await _ids(db) == ["u2"]


def test_backoff_is_capped_full_jitter() -> None:
    rng = random.Random(7)
    for attempt in range(12):
        cap = min(0.5, 0.01 * 2**attempt)
        draws = [backoff(attempt, 0.01, 0.5, rng) for _ in range(200)]
        assert all(0.0 <= d <= cap for d in draws)
        assert max(draws) > cap * 0.8  # the whole interval is used, not a fixed step


async def test_backoff_gaps_are_slept(db: Database) -> None:
    gaps: list[float] = []
    last = 0.0
    loop = asyncio.get_running_loop()

    async def work() -> None:
        nonlocal last
        now = loop.time()
        if last:
            gaps.append(now - last)
        last = now
        raise DeadlockDetected("injected", sqlstate="40P01")

    with pytest.raises(RetriesExhausted):
        await db.run_in_transaction(work, retries=4, base_delay=0.05, max_delay=0.08)
    assert len(gaps) == 4
    for i, gap in enumerate(gaps):
        assert gap <= min(0.08, 0.05 * 2**i) + 0.1  # the sleep plus one transaction


async def test_stats_count_outermost_transactions_only(db: Database) -> None:
    before = db.transaction_stats
    async with db.transaction(), db.transaction():
        await _user(db, 1)
    with pytest.raises(ValueError):
        async with db.transaction():
            raise ValueError
    after = db.transaction_stats
    assert isinstance(after, TransactionStats)
    assert after.started - before.started == 2
    assert after.committed - before.committed == 1
    assert after.rolled_back - before.rolled_back == 1


async def test_capabilities_and_what_sqlite_does_not_have(db: Database) -> None:
    caps = db.capabilities
    assert caps.savepoints and caps.returning and caps.full_text_search
    if _is_pg(db):
        assert caps.advisory_locks and caps.listen_notify and caps.jsonb and caps.async_pool
        assert caps.concurrent_writes and not caps.read_replicas
        return
    assert not (caps.advisory_locks or caps.listen_notify or caps.concurrent_writes)
    calls: list[Callable[[], object]] = [
        lambda: db.advisory_lock(1),
        lambda: db.listen("events"),
    ]
    for call in calls:
        with pytest.raises(NotSupportedError, match="sqlite"):
            call()
    with pytest.raises(NotSupportedError, match="sqlite"):
        await db.notify("events", "x")


async def test_health(db: Database) -> None:
    health = await db.get_database_health()
    assert health.reachable and health.error is None
    # Every table of the schema (its table count leaves schema_version out).
    assert health.schema_version == MIGRATIONS[-1].version
    assert health.table_count == len(EXPECTED.tables)
    assert health.latency_ms is not None and health.latency_ms >= 0
    status = db.get_health_status()
    assert status.healthy and status.pool.total >= 1
    assert status.pool.queries > 0


async def test_slow_query_log_names_the_query_not_the_values(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    backend = db.backend
    if isinstance(backend, PostgresDatabase):
        backend._slow_ms = 0.0
    else:
        assert isinstance(backend, AsyncSqliteDatabase)
        backend.connection.slow_ms = 0.0
        assert backend.reader is not None
        backend.reader.slow_ms = 0.0
    secret = "CANARY-VALUE-5150"
    with caplog.at_level("WARNING", logger="aragora_repos.slow_query"):
        await db.users.get_user_by_email(email=secret)
        await db.users.record_login(id=secret)
    names = [r.__dict__.get("query_name") for r in caplog.records]
    assert "GetUserByEmail" in names and "RecordLogin" in names
    assert all(secret not in r.getMessage() for r in caplog.records)


def test_cli_health_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from aragora_db.__main__ import main

    os.environ["ARAGORA_DATA_DIR"] = str(tmp_path)
    try:
        assert main(["health"]) == 1  # no database yet: said, and none created
        assert "no database there" in capsys.readouterr().err
        assert list(tmp_path.iterdir()) == []
        assert main(["migrate", "up", "--no-backup"]) == 0
        capsys.readouterr()
        assert main(["health"]) == 0
    finally:
        del os.environ["ARAGORA_DATA_DIR"]
    report = json.loads(capsys.readouterr().out)
    assert report["backend"] == "sqlite" and report["reachable"] is True
    assert report["pool"]["max_size"] == 1  # health opens one read-only connection
