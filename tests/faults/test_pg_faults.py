"""Fault tests on real PostgreSQL servers. Each prints a ``FIGURE`` line.

``ARAGORA_FAULT_SECONDS`` sets the load duration (CI default 5 s; ``make faults`` runs 30 s
and the full pair counts)."""

from __future__ import annotations

import asyncio
import contextvars
import os
import random
import time
import traceback
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from aragora_repos import (
    CommitOutcomeUnknown,
    ConnectionFailure,
    DatabaseError,
    Isolation,
    RetriesExhausted,
    Secret,
    TransactionConfig,
)
from aragora_repos.backends.postgres import PostgresDatabase
from tests.faults.cluster import Cluster
from tests.pg_server import eventually

pytestmark = pytest.mark.postgres

SECONDS = float(os.environ.get("ARAGORA_FAULT_SECONDS", "5"))
FULL = SECONDS >= 30


def figure(text: str) -> None:
    print(f"\nFIGURE {text}")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    own = Cluster.create()
    if own is None:
        pytest.skip("no PostgreSQL server binaries to run a server of the test's own")
    try:
        yield own
    finally:
        own.destroy()


async def _setup(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


ROWS = """
DROP TABLE IF EXISTS fault_rows;
CREATE TABLE fault_rows (id bigserial PRIMARY KEY, key text NOT NULL, worker int NOT NULL);
"""


class Load:
    """Writers that record what was acknowledged, and readers that check it."""

    def __init__(self, db: PostgresDatabase) -> None:
        self.db = db
        self.acked: set[str] = set()
        self.unknown: set[str] = set()
        self.failed: list[BaseException] = []
        self.internal: list[BaseException] = []
        self.ops = 0
        self.last_ok = 0.0

    def _record(self, exc: BaseException) -> None:
        (self.failed if isinstance(exc, DatabaseError) else self.internal).append(exc)

    async def writer(self, worker: int, until: float) -> None:
        n = 0
        while time.monotonic() < until:
            n += 1
            key = f"{worker}-{n}"

            async def write(key: str = key) -> None:
                await self.db.execute(
                    "INSERT INTO fault_rows (key, worker) VALUES ($1, $2)", (key, worker)
                )

            try:
                await self.db.run_in_transaction(write)
                self.acked.add(key)
                self.last_ok = time.monotonic()
            except CommitOutcomeUnknown:
                self.unknown.add(key)
            except BaseException as exc:
                self._record(exc)
            self.ops += 1
            row = None
            try:
                row = await self.db.fetchrow(
                    "SELECT count(*) FROM fault_rows WHERE key = $1", (key,), readonly=True
                )
                self.last_ok = time.monotonic()
            except BaseException as exc:
                self._record(exc)
            self.ops += 1
            if row is not None and key in self.acked and row[0] != 1:
                self.internal.append(AssertionError(f"read {row[0]} rows for acked {key}"))

    async def verdict(self, dsn: str) -> tuple[int, int, int]:
        """(lost acknowledged writes, duplicates, unknown commits that did land)."""
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT key, count(*) FROM fault_rows GROUP BY key")
        finally:
            await conn.close()
        counts = {r[0]: r[1] for r in rows}
        lost = sum(1 for k in self.acked if k not in counts)
        duplicates = sum(c - 1 for c in counts.values() if c > 1)
        landed = sum(1 for k in self.unknown if k in counts)
        return lost, duplicates, landed


async def test_terminating_pooled_backends_under_load(postgres_dsn: str) -> None:
    await _setup(postgres_dsn, ROWS)
    db = await PostgresDatabase.open(
        Secret(postgres_dsn),
        min_size=4,
        max_size=6,
        transaction_config=TransactionConfig(retries=8, base_delay=0.005, max_delay=0.2),
    )
    admin = await asyncpg.connect(postgres_dsn)
    load = Load(db)
    kills = 0
    rng = random.Random(3)
    until = time.monotonic() + SECONDS
    try:
        workers = [asyncio.create_task(load.writer(w, until)) for w in range(6)]
        while time.monotonic() < until:
            await asyncio.sleep(1.0 if FULL else 0.5)
            pids = await admin.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
            if pids:
                await admin.execute("SELECT pg_terminate_backend($1)", rng.choice(pids)[0])
                kills += 1
        await asyncio.gather(*workers)
    finally:
        await admin.close()
        await db.close()
    lost, duplicates, landed = await load.verdict(postgres_dsn)
    figure(
        f"terminate churn {SECONDS:.0f}s: {kills} backends killed, {load.ops} operations, "
        f"{len(load.failed) + len(load.internal)} failed after retry, {lost} lost acknowledged "
        f"writes, {duplicates} duplicates, {len(load.unknown)} commit-outcome-unknown "
        f"({landed} landed), retried {db.transaction_stats.retried}"
    )
    assert kills >= 5
    assert (len(load.failed), len(load.internal), lost, duplicates) == (0, 0, 0, 0), "".join(
        "".join(traceback.format_exception(e)) for e in (load.failed[:2] + load.internal[:2])
    )


async def test_server_restart_under_load(cluster: Cluster) -> None:
    await _setup(cluster.dsn, ROWS)
    db = await PostgresDatabase.open(
        Secret(cluster.dsn),
        min_size=4,
        max_size=4,
        pool_timeout=10,
        transaction_config=TransactionConfig(retries=12, base_delay=0.05, max_delay=0.5),
    )
    load = Load(db)
    until = time.monotonic() + max(SECONDS, 4)
    try:
        workers = [asyncio.create_task(load.writer(w, until)) for w in range(4)]
        await asyncio.sleep(1.0)
        stopped = time.monotonic()
        await asyncio.to_thread(cluster.restart, "fast")
        up = time.monotonic()
        while load.last_ok < up and time.monotonic() < up + 30:
            await asyncio.sleep(0.01)
        recovered = load.last_ok - stopped
        await asyncio.gather(*workers)
    finally:
        await db.close()
    lost, duplicates, _ = await load.verdict(cluster.dsn)
    kinds = sorted({type(e).__name__ for e in load.failed})
    figure(
        f"server restart: restart took {up - stopped:.2f}s, first success {recovered:.2f}s "
        f"after the stop began; {len(load.internal)} driver-internal errors reached callers; "
        f"{len(load.failed)} typed errors {kinds}; {lost} lost acknowledged writes, "
        f"{duplicates} duplicates; {load.ops} operations"
    )
    assert load.internal == []
    assert all(isinstance(e, ConnectionFailure | RetriesExhausted) for e in load.failed)
    assert (lost, duplicates) == (0, 0)
    assert recovered < 30


TRANSFERS = """
DROP TABLE IF EXISTS fault_accounts;
CREATE TABLE fault_accounts (id int PRIMARY KEY, balance bigint NOT NULL);
INSERT INTO fault_accounts SELECT g, 1000 FROM generate_series(1, 10) g;
"""


async def _transfers(
    db: PostgresDatabase, isolation: Isolation | None, ordered: bool, retries: int, until: float
) -> tuple[int, int]:
    committed = exhausted = 0
    rng = random.Random()

    async def one() -> None:
        a = 1 if rng.random() < 0.5 else rng.randint(2, 10)
        b = rng.choice([i for i in range(1, 11) if i != a])
        first, second = (min(a, b), max(a, b)) if ordered else (a, b)
        amount = rng.randint(1, 50)

        async def move() -> None:
            row = await db.fetchrow("SELECT balance FROM fault_accounts WHERE id = $1", (a,))
            assert row is not None
            delta = {a: -amount, b: amount}
            for acct in (first, second):
                await db.execute(
                    "UPDATE fault_accounts SET balance = balance + $2 WHERE id = $1",
                    (acct, delta[acct]),
                )
                await asyncio.sleep(0)

        await db.run_in_transaction(move, isolation=isolation, retries=retries)

    async def worker() -> None:
        nonlocal committed, exhausted
        while time.monotonic() < until:
            try:
                await one()
                committed += 1
            except RetriesExhausted:
                exhausted += 1

    await asyncio.gather(*(worker() for _ in range(8)))
    return committed, exhausted


@pytest.mark.parametrize(
    ("isolation", "ordered", "retries"),
    [
        (Isolation.SERIALIZABLE, True, 10),
        (Isolation.REPEATABLE_READ, True, 10),
        (Isolation.READ_COMMITTED, False, 10),
        (Isolation.SERIALIZABLE, True, 0),
    ],
)
async def test_contended_transfers_keep_the_balance(
    postgres_dsn: str, isolation: Isolation, ordered: bool, retries: int
) -> None:
    await _setup(postgres_dsn, TRANSFERS)
    db = await PostgresDatabase.open(
        Secret(postgres_dsn),
        min_size=8,
        max_size=8,
        transaction_config=TransactionConfig(base_delay=0.002, max_delay=0.05),
    )
    # Unordered updates deadlock; detect them fast (the database default is 1 s).
    async with db.connection() as conn:
        await conn.execute("SET deadlock_timeout = '50ms'")
    until = time.monotonic() + min(SECONDS, 10)
    try:
        if not ordered:
            await _setup(
                postgres_dsn,
                "DO $$BEGIN EXECUTE format('ALTER DATABASE %I SET deadlock_timeout = %L', "
                "current_database(), '50ms'); END$$",
            )
            await db.close()
            db = await PostgresDatabase.open(
                Secret(postgres_dsn),
                min_size=8,
                max_size=8,
                transaction_config=TransactionConfig(base_delay=0.002, max_delay=0.05),
            )
        committed, exhausted = await _transfers(db, isolation, ordered, retries, until)
        total = await db.fetchrow("SELECT sum(balance) FROM fault_accounts", ())
        stats = db.transaction_stats
    finally:
        await db.close()
        if not ordered:
            await _setup(
                postgres_dsn,
                "DO $$BEGIN EXECUTE format('ALTER DATABASE %I RESET deadlock_timeout', "
                "current_database()); END$$",
            )
    assert total is not None
    figure(
        f"transfers {isolation.value} {'ordered' if ordered else 'unordered'} retries={retries}: "
        f"{committed} committed, {stats.serialization_failures} serialization failures, "
        f"{stats.deadlocks} deadlocks, {stats.retried} retried, {exhausted} exhausted "
        f"(raised RetriesExhausted), balance drift {int(total[0]) - 10_000}"
    )
    assert int(total[0]) == 10_000
    assert committed > 0
    if retries == 0:
        assert exhausted > 0 and stats.retried == 0
    if not ordered:
        assert stats.deadlocks > 0


@pytest.fixture(scope="module")
def replica(cluster: Cluster) -> Iterator[Cluster]:
    standby = cluster.replica()
    yield standby


@pytest.fixture
async def routed(cluster: Cluster, replica: Cluster) -> AsyncIterator[PostgresDatabase]:
    await _setup(cluster.dsn, ROWS)
    db = await PostgresDatabase.open(
        Secret(cluster.dsn),
        min_size=2,
        max_size=4,
        replicas=[Secret(replica.dsn)],
        replica_check_interval=0.05,
    )
    yield db
    await db.close()


async def test_replica_routing_and_read_your_writes(routed: PostgresDatabase) -> None:
    db = routed
    pairs = 10_000 if FULL else 2_000
    status = db.get_health_status().replicas
    assert len(status) == 1 and status[0].healthy
    stale = 0

    async def pairs_worker(offset: int, count: int) -> None:
        nonlocal stale
        for i in range(count):
            key = f"ryw-{offset + i}"
            await db.execute("INSERT INTO fault_rows (key, worker) VALUES ($1, 0)", (key,))
            row = await db.fetchrow(
                "SELECT count(*) FROM fault_rows WHERE key = $1", (key,), readonly=True
            )
            if row is None or row[0] != 1:
                stale += 1
            if i % 50 == 0:
                # Once a health check that began after the write has seen the replica catch
                # up, reads of this context go there again; the row must still be visible.
                await eventually(caught_up, "a health check that sees the replica caught up")
                row = await db.fetchrow(
                    "SELECT count(*) FROM fault_rows WHERE key = $1", (key,), readonly=True
                )
                if row is None or row[0] != 1:
                    stale += 1

    async def caught_up() -> bool:
        await db.check_replicas()
        return db.get_health_status().replicas[0].lag_bytes == 0

    per = pairs // 4
    await asyncio.gather(*(pairs_worker(w * per, per) for w in range(4)))
    ryw_replica_reads = db.pool_stats().replica_reads

    async def fresh_reads() -> int:
        for _ in range(200):
            await db.fetchrow("SELECT count(*) FROM fault_rows", (), readonly=True)
        return db.pool_stats().replica_reads

    after = await asyncio.create_task(fresh_reads(), context=contextvars.Context())
    figure(
        f"replica: {pairs} write-then-read pairs, {stale} stale reads, "
        f"{ryw_replica_reads} reads in the writing contexts served by the replica; "
        f"200 reads from a context with no writes: {after - ryw_replica_reads} on the replica"
    )
    assert stale == 0
    assert ryw_replica_reads > 0
    assert after - ryw_replica_reads == 200


async def test_replica_stopped_under_load(routed: PostgresDatabase, replica: Cluster) -> None:
    db = routed
    failed = 0
    reads = 0
    by_primary_at: float | None = None
    stopped_at: float | None = None

    async def reader() -> None:
        nonlocal failed, reads, by_primary_at
        end = time.monotonic() + 4
        while time.monotonic() < end:
            before = db.pool_stats().replica_reads
            try:
                await db.fetchrow("SELECT 1", (), readonly=True)
                reads += 1
            except DatabaseError:
                failed += 1
            if (
                stopped_at is not None
                and by_primary_at is None
                and db.pool_stats().replica_reads == before
            ):
                by_primary_at = time.monotonic()

    task = asyncio.create_task(reader(), context=contextvars.Context())

    async def replica_serving() -> bool:
        return db.pool_stats().replica_reads > 0

    await eventually(replica_serving, "the replica to serve reads", timeout=3)
    stopped_at = time.monotonic()
    await asyncio.to_thread(replica.stop, "immediate")
    stop_done = time.monotonic()
    await task
    shift = (by_primary_at or float("inf")) - stop_done
    figure(
        f"replica stopped under load: {reads} reads, {failed} failed; reads on the primary "
        f"{max(shift, 0) * 1000:.0f} ms after the stop completed; replica "
        f"{'ejected' if not db.get_health_status().replicas[0].healthy else 'still healthy'}"
    )
    replica.start()  # for any later test of this module
    assert failed == 0
    assert shift <= 1.0
