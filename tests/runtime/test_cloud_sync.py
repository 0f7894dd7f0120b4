"""The background sync of the local SQLite database to a cloud PostgreSQL
(``aragora_repos.tools.sync``), against real servers at both ends: captured changes
(inserts, updates, deletes, a key changed, a row inserted and deleted before the worker
sees it, many updates of one row in one batch) reach the target, and the target then
equals the source by migrate-data's row counts and canonical checksums; a batch sent twice
changes nothing; a change the target refuses is parked after the retries while other rows
flow, and delivered after a re-drive; the target's schema is checked; ``connect()`` runs
the service; the worker SIGKILLed at random points loses and duplicates nothing; the
target stopped for a while under a write load costs the application nothing."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from pathlib import Path

import asyncpg
import pytest

from aragora_db import MIGRATIONS, Database, connect
from aragora_repos import Config, Secret
from aragora_repos.config import SyncSettings
from aragora_repos.tools.migrate_data.plan import plan
from aragora_repos.tools.migrate_data.verify import Checksum, source_checksum, target_checksum_sql
from aragora_repos.tools.sync import SyncError, SyncWorker
from tests.faults.cluster import Cluster
from tests.pg_server import fresh_database, run_async

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parent.parent.parent
SYNCED = ("debates", "nomic_cycles", "stream_events", "agent_metrics")


@contextmanager
def target(postgres_dsn: str, *, migrate: bool = True, upto: int | None = None) -> Iterator[str]:
    """A fresh target database of this test's own, migrated (to ``upto``)."""
    with fresh_database(postgres_dsn) as dsn:
        if migrate:
            run_async(_migrate(dsn, upto))
        yield dsn


async def _migrate(dsn: str, upto: int | None) -> None:
    db = await connect(Config(backend="postgres", dsn=Secret(dsn), pool_max=2))
    try:
        await db.backend.migrate([m for m in MIGRATIONS if upto is None or m.version <= upto])
    finally:
        await db.close()


def local_config(data: Path, dsn: str, **settings: object) -> Config:
    return Config(data_dir=data, sync=SyncSettings(Secret(dsn), **settings))  # type: ignore[arg-type]


@asynccontextmanager
async def local(data: Path, dsn: str, **settings: object) -> AsyncIterator[Database]:
    """The local database, migrated, without the service (tests drive a worker)."""
    db = await connect(Config(data_dir=data))
    try:
        await db.migrate()
        yield db
    finally:
        await db.close()


async def debate(db: Database, i: int, task: str = "t") -> None:
    await db.debates.insert_debate(
        id=f"d{i}",
        slug=f"s{i}",
        task=task,
        agents=["a", "b"],
        final_answer=None,
        consensus_reached=i % 2 == 0,
        confidence=0.5,
        rounds_used=2,
        duration_seconds=None,
        grounded_verdict={"i": i, "q": "it's\n"},
    )


async def checksums(source: Path, dsn: str) -> dict[str, tuple[Checksum, Checksum]]:
    """Per synced table, migrate-data's (source, target) row count and checksum."""
    conn = await asyncpg.connect(dsn)
    try:
        with closing(sqlite3.connect(source)) as lite:
            planned = await plan(lite, conn, tables=list(SYNCED))
        out = {}
        for table in planned.tables:
            found = await conn.fetchrow(target_checksum_sql("public", table))
            assert found is not None
            rows, total = found
            out[table.name] = (
                source_checksum(source, table),
                Checksum(int(rows), int(total)),
            )
        return out
    finally:
        await conn.close()


async def assert_equal(source: Path, dsn: str) -> int:
    """The target holds the source's synced tables exactly; their total row count."""
    found = await checksums(source, dsn)
    assert set(found) == set(SYNCED)
    for name, (here, there) in found.items():
        assert here == there, f"{name}: source {here}, target {there}"
    return sum(here.rows for here, _ in found.values())


async def drain(data: Path, dsn: str, **settings: object) -> SyncWorker:
    cfg = local_config(data, dsn, **settings)
    assert cfg.sync is not None
    worker = SyncWorker(cfg, cfg.sync, MIGRATIONS)
    await worker.drain()
    return worker


async def test_changes_reach_the_target_and_it_equals_the_source(
    tmp_path: Path, postgres_dsn: str
) -> None:
    data = tmp_path / "data"
    with target(postgres_dsn) as dsn:
        async with local(data, dsn) as db:
            for i in range(12):
                await debate(db, i)
            for n in range(25):  # one row updated many times, within and across batches
                await db.backend.execute("UPDATE debates SET view_count = ? WHERE id = 'd3'", (n,))
            await debate(db, 99)  # inserted and deleted before the worker sees it
            await db.backend.execute("DELETE FROM debates WHERE id = 'd99'", ())
            await db.backend.execute("DELETE FROM debates WHERE id = 'd5'", ())
            await db.backend.execute("UPDATE debates SET id = 'd7b' WHERE id = 'd7'", ())
            await db.backend.execute(
                "INSERT INTO nomic_cycles (loop_id, cycle_number, phase) VALUES ('l', 1, 'p')", ()
            )
            await db.backend.execute(
                "INSERT INTO stream_events (loop_id, cycle, event_type, event_data) "
                "VALUES ('l', 1, 'e', '{\"k\": \"\\u00e9\"}')",
                (),
            )
            queued = (await db.backend.fetchrow("SELECT count(*) FROM sync_outbox", ()))[0]
            assert queued == 12 + 25 + 2 + 1 + 2 + 2
        worker = await drain(data, dsn, batch_size=7)
        status = await worker.status()
        await worker.close()
        assert status.queue_size == 0 and status.synced_count == queued
        assert status.parked_count == 0 and status.last_success is not None
        assert await assert_equal(data / "aragora.db", dsn) == 11 + 2
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT view_count FROM debates WHERE id = 'd3'") == 24
            ids = [r[0] for r in await conn.fetch("SELECT id FROM debates ORDER BY id")]
            assert "d5" not in ids and "d7" not in ids and "d7b" in ids and "d99" not in ids
            last = await conn.fetchval("SELECT last_seq FROM sync_state")
            assert last >= queued
        finally:
            await conn.close()


async def test_a_batch_sent_twice_changes_nothing(tmp_path: Path, postgres_dsn: str) -> None:
    data = tmp_path / "data"
    with target(postgres_dsn) as dsn:
        async with local(data, dsn) as db:
            for i in range(3):
                await debate(db, i)
        cfg = local_config(data, dsn, batch_size=10)
        assert cfg.sync is not None
        worker = SyncWorker(cfg, cfg.sync, MIGRATIONS)
        try:
            # The target commits a batch and the worker dies before removing it locally.
            remote = await worker._remote()
            outbox = await worker._local()
            batch = outbox.read(10)
            assert await remote.apply(worker._source, batch) == 3
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute("UPDATE debates SET task = 'edited there' WHERE id = 'd1'")
                # Sent again: nothing applied, the row edited on the target is untouched.
                assert await worker.step() == 3
                assert await conn.fetchval("SELECT task FROM debates WHERE id = 'd1'") == (
                    "edited there"
                )
                assert (await worker.status()).queue_size == 0
                assert (await worker.status()).synced_count == 0
            finally:
                await conn.close()
        finally:
            await worker.close()


def cli(data: Path, dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ARAGORA_DATA_DIR": str(data),
        "SUPABASE_SYNC_ENABLED": "true",
        "SUPABASE_POSTGRES_DSN": dsn,
    }
    return subprocess.run(
        [sys.executable, "-m", "aragora_db", "sync", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


async def test_a_refused_change_is_parked_others_flow_and_a_redrive_delivers_it(
    tmp_path: Path, postgres_dsn: str
) -> None:
    data = tmp_path / "data"
    with target(postgres_dsn) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "ALTER TABLE debates ADD CONSTRAINT no_poison CHECK (task <> 'poison')"
            )
            async with local(data, dsn) as db:
                for i in range(10):
                    await debate(db, i, "poison" if i == 4 else "fine")
                # A later change of the refused row waits behind it.
                await db.backend.execute("UPDATE debates SET view_count = 5 WHERE id = 'd4'", ())
            worker = await drain(data, dsn, batch_size=4, max_retries=3)
            status = await worker.status()
            assert status.queue_size == 0
            assert status.parked_count == 2 and status.failed_count == 3
            parked = await worker.dead_letters()
            assert [p.op for p in parked] == ["U", "U"]
            assert "no_poison" in parked[0].reason and parked[0].attempts == 3
            assert "waiting behind" in parked[1].reason
            ids = {r[0] for r in await conn.fetch("SELECT id FROM debates")}
            assert ids == {f"d{i}" for i in range(10)} - {"d4"}

            # Other rows keep flowing; a new change of the parked row joins it.
            async with local(data, dsn) as db:
                await debate(db, 20)
                await db.backend.execute("UPDATE debates SET task = 'poison' WHERE id = 'd4'", ())
            await worker.drain()
            assert await conn.fetchval("SELECT count(*) FROM debates WHERE id = 'd20'") == 1
            assert (await worker.status()).parked_count == 3
            await worker.close()

            listed = cli(data, dsn, "--dead-letter")
            assert listed.returncode == 0, listed.stderr
            lines = listed.stdout.splitlines()
            assert len(lines) == 3 and all('\tdebates\t["d4"]\t' in line for line in lines)
            assert "no_poison" in lines[0] and "waiting behind" in lines[2]

            # Fixed on the target, re-driven: delivered, in order.
            await conn.execute("ALTER TABLE debates DROP CONSTRAINT no_poison")
            redriven = cli(data, dsn, "--redrive")
            assert redriven.returncode == 0 and "3 change(s) back" in redriven.stdout
            once = cli(data, dsn, "--once")
            assert once.returncode == 0, once.stderr
            assert await conn.fetchval("SELECT view_count FROM debates WHERE id = 'd4'") == 5
            assert await assert_equal(data / "aragora.db", dsn) == 11
            status_out = cli(data, dsn, "--status")
            assert "queued: 0" in status_out.stdout and "parked: 0" in status_out.stdout
        finally:
            await conn.close()


@pytest.mark.parametrize("how", ["unmigrated", "older", "different"])
async def test_the_target_schema_is_checked_before_the_first_push(
    how: str, tmp_path: Path, postgres_dsn: str
) -> None:
    data = tmp_path / "data"
    synced_at = max(m.version for m in MIGRATIONS)
    upto = synced_at - 1 if how == "older" else None
    with target(postgres_dsn, migrate=how != "unmigrated", upto=upto) as dsn:
        if how == "different":
            conn = await asyncpg.connect(dsn)
            await conn.execute("UPDATE schema_version SET checksum = 'x' WHERE version = 3")
            await conn.close()
        async with local(data, dsn) as db:
            await debate(db, 1)
        expected = {
            "unmigrated": "no schema_version table",
            "older": f"older than this database's: migration(s) {synced_at} not applied",
            "different": "migration(s) 3 were applied there with other contents",
        }[how]
        with pytest.raises(SyncError, match=re.escape(expected)):
            await drain(data, dsn)
        out = cli(data, dsn, "--once")
        assert out.returncode != 0 and expected.split(":")[0] in out.stderr
        async with local(data, dsn) as db:
            left = await db.backend.fetchrow("SELECT count(*) FROM sync_outbox", ())
            assert left is not None and left[0] == 1  # nothing lost


async def test_connect_runs_the_service_and_queue_calls_capture_again(
    tmp_path: Path, postgres_dsn: str
) -> None:
    data = tmp_path / "data"
    with target(postgres_dsn) as dsn:
        db = await connect(local_config(data, dsn, batch_size=10, interval=0.5))
        assert db.sync is not None
        await db.migrate()
        for i in range(30):
            await debate(db, i)
        assert await db.sync.flush(timeout=30)
        status = await db.sync.get_status()
        assert status.queue_size == 0 and status.synced_count == 30 and status.running
        db.sync.queue_debate({"id": "d3", "task": "ignored: the row is captured as it is"})
        assert (await db.sync.get_status()).queue_size == 1
        from aragora_repos import NotFoundError

        with pytest.raises(NotFoundError, match="save it first"):
            db.sync.queue_debate({"id": "nope"})
        await debate(db, 30)
        await db.close()  # delivers what is queued
        assert await assert_equal(data / "aragora.db", dsn) == 31


def test_settings_from_the_environment_keep_the_target_out_of_sight(tmp_path: Path) -> None:
    from aragora_repos import ConfigError

    canary = "postgresql://sync:CANARYPW-91f3@db.example.com:6543/postgres"
    env = {
        "ARAGORA_DATA_DIR": str(tmp_path),
        "SUPABASE_SYNC_ENABLED": "true",
        "SUPABASE_POSTGRES_DSN": canary,
        "SUPABASE_SYNC_BATCH_SIZE": "50",
    }
    cfg = Config.from_env(env)
    assert cfg.backend == "sqlite" and cfg.sync is not None and cfg.sync.batch_size == 50
    assert (cfg.sync.interval, cfg.sync.max_retries) == (30.0, 3)
    assert "CANARYPW" not in repr(cfg) and "CANARYPW" not in repr(cfg.sync)
    for bad, message in (
        ({"SUPABASE_SYNC_ENABLED": "maybe"}, "invalid SUPABASE_SYNC_ENABLED"),
        ({"SUPABASE_POSTGRES_DSN": ""}, "SUPABASE_POSTGRES_DSN is not set"),
        ({"SUPABASE_SYNC_BATCH_SIZE": "0"}, "SUPABASE_SYNC_BATCH_SIZE"),
        ({"ARAGORA_DB_BACKEND": "postgres", "ARAGORA_POSTGRES_DSN": canary}, "backend is Post"),
    ):
        with pytest.raises(ConfigError, match=message) as caught:
            Config.from_env({**env, **bad})
        assert "CANARYPW" not in str(caught.value)
    assert Config.from_env({**env, "SUPABASE_SYNC_ENABLED": "false"}).backend == "postgres"


CHANGES = int(os.environ.get("ARAGORA_SYNC_CHANGES", "100000"))
KILLS = int(os.environ.get("ARAGORA_SYNC_KILLS", "20"))


def capture_load(file: Path, changes: int) -> None:
    """``changes`` captured changes by raw SQL: inserts of two tables, then updates and
    deletes of some of the rows (the triggers capture any writer)."""
    events, metrics = changes * 70 // 100, changes * 20 // 100
    touched = (changes - events - metrics) // 2
    with closing(sqlite3.connect(file)) as lite:
        lite.execute("BEGIN")
        lite.executemany(
            "INSERT INTO stream_events (loop_id, cycle, event_type, event_data) "
            "VALUES (?, ?, 'e', ?)",
            ((f"loop{i % 7}", i, json.dumps({"n": i, "s": "é\n'"})) for i in range(events)),
        )
        lite.executemany(
            "INSERT INTO agent_metrics (loop_id, cycle, agent_name, phase, latency_ms) "
            "VALUES ('l', ?, 'a', 'p', ?)",
            ((i, i / 3) for i in range(metrics)),
        )
        lite.execute(f"UPDATE stream_events SET agent = 'x' WHERE id <= {touched}")
        lite.execute(
            f"DELETE FROM stream_events WHERE id > {events - touched}",
        )
        lite.commit()


async def test_the_worker_killed_at_random_points_loses_and_duplicates_nothing(
    tmp_path: Path, postgres_dsn: str
) -> None:
    data = tmp_path / "data"
    with target(postgres_dsn) as dsn:
        async with local(data, dsn):
            pass
        file = data / "aragora.db"
        capture_load(file, CHANGES)
        with closing(sqlite3.connect(file)) as lite:
            (captured,) = lite.execute("SELECT count(*) FROM sync_outbox").fetchone()
            (last,) = lite.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'sync_outbox'"
            ).fetchone()
        assert captured == CHANGES
        env = {
            **os.environ,
            "ARAGORA_DATA_DIR": str(data),
            "SUPABASE_SYNC_ENABLED": "true",
            "SUPABASE_POSTGRES_DSN": dsn,
        }
        command = [sys.executable, "-m", "aragora_db", "sync", "--once", "--batch", "250"]
        rng = random.Random(7)
        kills = 0
        for _ in range(KILLS):
            process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            assert process.stdout is not None
            for _ in range(rng.randrange(1, max(2, CHANGES // 250 // KILLS))):
                if not process.stdout.readline():
                    break
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += process.returncode == -signal.SIGKILL
        assert kills == KILLS
        with closing(sqlite3.connect(file)) as lite:
            (left,) = lite.execute("SELECT count(*) FROM sync_outbox").fetchone()
        assert 0 < left < captured  # the killed runs delivered some, not all
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        rows = await assert_equal(file, dsn)
        assert rows == CHANGES * 70 // 100 + CHANGES * 20 // 100 - (CHANGES // 10) // 2
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT last_seq FROM sync_state") == last
        finally:
            await conn.close()
        with closing(sqlite3.connect(file)) as lite:
            assert lite.execute("SELECT count(*) FROM sync_outbox").fetchone() == (0,)
            assert lite.execute("SELECT count(*) FROM sync_dead_letter").fetchone() == (0,)


#: How long the target is down (``make faults``: ARAGORA_FAULT_SECONDS=30).
DOWN = float(os.environ.get("ARAGORA_FAULT_SECONDS", "5"))


async def test_the_target_down_under_a_write_load_costs_the_application_nothing(
    tmp_path: Path,
) -> None:
    cluster = Cluster.create()
    if cluster is None:
        pytest.fail("no PostgreSQL server binaries to start a target of the test's own")
    data = tmp_path / "data"
    try:
        await _migrate(cluster.dsn, None)
        db = await connect(local_config(data, cluster.dsn, batch_size=100, interval=1.0))
        assert db.sync is not None
        await db.migrate()
        loop = asyncio.get_running_loop()
        latencies: dict[str, list[float]] = {"up": [], "down": [], "back": []}
        written = 0

        async def write(phase: str, seconds: float) -> None:
            # About 200 committed changes a second (the pace, not a synchronisation).
            nonlocal written
            end = loop.time() + seconds
            while loop.time() < end:
                start = time.perf_counter()
                await db.backend.execute(
                    "INSERT INTO stream_events (loop_id, cycle, event_type) VALUES (?, ?, 'e')",
                    (phase, written),
                )
                latencies[phase].append(time.perf_counter() - start)
                written += 1
                await asyncio.sleep(0.005)

        await write("up", 2.0)
        await asyncio.to_thread(cluster.stop)
        await write("down", DOWN)
        down_status = await db.sync.get_status()
        await asyncio.to_thread(cluster.start)
        await write("back", 2.0)
        assert await db.sync.flush(timeout=120)
        status = await db.sync.get_status()
        await db.close()
        assert written == sum(len(v) for v in latencies.values())
        assert down_status.queue_size > 0 and down_status.last_error is not None
        assert "unreachable" in down_status.last_error
        assert status.queue_size == 0 and status.parked_count == 0
        assert await assert_equal(data / "aragora.db", cluster.dsn) == written
        for phase, values in latencies.items():
            values.sort()
            p50, p99 = values[len(values) // 2] * 1e3, values[int(len(values) * 0.99)] * 1e3
            print(
                f"FIGURE sync, target down {DOWN:.0f} s: {phase}: {len(values)} inserts, "
                f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {values[-1] * 1e3:.2f} ms"
            )
    finally:
        cluster.destroy()


async def test_through_a_transaction_pooler(tmp_path: Path, postgres_dsn: str) -> None:
    """PgBouncer in transaction mode, one server connection shared by two workers of two
    source databases: nothing is prepared under a name, every statement is in a
    transaction (the refused change's savepoints too)."""
    from tests.pgbouncer import pgbouncer

    with target(postgres_dsn) as dsn, pgbouncer(dsn, "transaction", pool_size=1) as pooled:
        conn = await asyncpg.connect(dsn)
        await conn.execute("ALTER TABLE debates ADD CONSTRAINT no_poison CHECK (task <> 'poison')")
        await conn.close()
        sources = [tmp_path / "one", tmp_path / "two"]
        for n, data in enumerate(sources):
            async with local(data, pooled) as db:
                for i in range(40):
                    await debate(db, n * 100 + i, "poison" if i == 13 else "fine")
        workers = []
        for data in sources:
            cfg = local_config(data, pooled, batch_size=9, max_retries=1)
            assert cfg.sync is not None
            workers.append(SyncWorker(cfg, cfg.sync, MIGRATIONS))
        await asyncio.gather(*(w.drain() for w in workers))
        for w in workers:
            status = await w.status()
            assert status.queue_size == 0 and status.parked_count == 1
            await w.close()
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT count(*) FROM debates") == 78
            assert await conn.fetchval("SELECT count(*) FROM sync_state") == 2
        finally:
            await conn.close()


def copy_database(source: Path, target: Path) -> None:
    """SQLite's online backup: the file as its readers see it, WAL included."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


async def test_a_restored_database_is_refused_until_it_takes_a_new_source_id(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """Restored from a backup, the database issues change numbers the target already has
    from it, and they would be skipped: the worker refuses, and --new-source fixes it."""

    data = tmp_path / "data"
    with target(postgres_dsn) as dsn:
        async with local(data, dsn) as db:
            await debate(db, 1)
        await (await drain(data, dsn)).close()  # the database is a source now: it has an id
        backup = tmp_path / "backup.db"
        copy_database(data / "aragora.db", backup)
        async with local(data, dsn) as db:
            for i in range(2, 6):
                await debate(db, i)
        await (await drain(data, dsn)).close()
        copy_database(backup, data / "aragora.db")  # the restore
        async with local(data, dsn) as db:
            await debate(db, 7)
        cfg = local_config(data, dsn)
        assert cfg.sync is not None
        worker = SyncWorker(cfg, cfg.sync, MIGRATIONS)
        with pytest.raises(SyncError, match="restored from a backup or copied"):
            await worker.drain()
        await worker.close()
        refused = cli(data, dsn, "--once")
        assert refused.returncode != 0 and "--new-source" in refused.stderr
        renewed = cli(data, dsn, "--new-source")
        assert renewed.returncode == 0 and "source id: " in renewed.stdout
        assert cli(data, dsn, "--once").returncode == 0
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT count(*) FROM debates WHERE id = 'd7'") == 1
            assert await conn.fetchval("SELECT count(*) FROM sync_state") == 2
        finally:
            await conn.close()


async def test_flushes_beside_the_running_service_share_the_worker(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """Three flushes at once while the service's own task delivers: the steps take turns
    (one connection to the target, one to the outbox), every change arrives once."""
    data = tmp_path / "data"
    with target(postgres_dsn) as dsn:
        db = await connect(local_config(data, dsn, batch_size=7, interval=0.2))
        assert db.sync is not None
        await db.migrate()
        for i in range(150):
            await debate(db, i)
        done = await asyncio.gather(*(db.sync.flush(timeout=60) for _ in range(3)))
        status = await db.sync.get_status()
        await db.close()
        assert done == [True, True, True]
        assert status.queue_size == 0 and status.synced_count == 150
        assert status.last_error is None
        assert await assert_equal(data / "aragora.db", dsn) == 150


async def test_hostile_outbox_rows_are_parked_and_nothing_they_name_runs(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """Any SQLite tool can write the outbox: table names with quotes, a NUL, a newline and
    SQL in them, keys that are not JSON or have the wrong arity, a table the target lacks.
    Each is refused on its own and parked; the changes around them arrive; nothing they
    name runs."""
    data = tmp_path / "data"
    hostile = [
        ('debates"; DROP TABLE debates; --', "U", '["d1"]'),
        ("debates", "U", "not json"),
        ("debates", "U", '["d1", "extra"]'),
        ("deb\x00ates", "U", '["d1"]'),
        ("debates\n-- aragora:synced x", "D", '["d1"]'),
        ("no_such_table", "D", '["x"]'),
        ("debates", "D", '["x\'); DROP TABLE debates; --"]'),
    ]
    with target(postgres_dsn) as dsn:
        async with local(data, dsn) as db:
            await debate(db, 1)
        with closing(sqlite3.connect(data / "aragora.db")) as lite:
            lite.executemany(
                "INSERT INTO sync_outbox (table_name, op, row_key) VALUES (?, ?, ?)", hostile
            )
            lite.commit()
        async with local(data, dsn) as db:
            await debate(db, 2)
        worker = await drain(data, dsn, batch_size=4, max_retries=1)
        status = await worker.status()
        parked = await worker.dead_letters()
        await worker.close()
        assert status.queue_size == 0
        # The last one is a well-formed delete of a key no row has: applied, a no-op.
        assert status.parked_count == len(hostile) - 1
        assert {(p.table, p.key) for p in parked} == {(t, k) for t, _, k in hostile[:-1]}
        assert await assert_equal(data / "aragora.db", dsn) == 2
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT count(*) FROM debates") == 2
        finally:
            await conn.close()


async def test_four_workers_at_once_deliver_each_change_once(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """Four ``sync --once`` processes on one database and one target: the target's mark
    row serializes them, the outbox's writer lock too; the target equals the source."""
    data = tmp_path / "data"
    with target(postgres_dsn) as dsn:
        async with local(data, dsn):
            pass
        capture_load(data / "aragora.db", 20_000)
        env = {
            **os.environ,
            "ARAGORA_DATA_DIR": str(data),
            "SUPABASE_SYNC_ENABLED": "true",
            "SUPABASE_POSTGRES_DSN": dsn,
        }
        command = [sys.executable, "-m", "aragora_db", "sync", "--once", "--batch", "200"]
        runs = [
            subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            for _ in range(4)
        ]
        for run in runs:
            _, err = run.communicate()
            assert run.returncode == 0, err.decode()
        with closing(sqlite3.connect(data / "aragora.db")) as lite:
            assert lite.execute("SELECT count(*) FROM sync_outbox").fetchone() == (0,)
        assert await assert_equal(data / "aragora.db", dsn) == 20_000 * 9 // 10 - 1_000


def test_looking_at_the_sync_writes_nothing(tmp_path: Path) -> None:
    """``sync --status`` and ``--dead-letter`` only look: a database never synced keeps its
    bytes (no source id is taken), a foreign file in rollback-journal mode keeps its bytes
    and gets no journal, and a missing one is a clear error with nothing created."""
    target_dsn = "postgresql://nobody@127.0.0.1:1/none"  # never reached by looking
    migrated = tmp_path / "migrated"
    subprocess.run(
        [sys.executable, "-m", "aragora_db", "migrate", "up"],
        cwd=ROOT,
        env={**os.environ, "ARAGORA_DATA_DIR": str(migrated)},
        check=True,
        capture_output=True,
    )
    with closing(sqlite3.connect(migrated / "aragora.db")) as lite:
        lite.execute("INSERT INTO stream_events (loop_id, cycle, event_type) VALUES ('l', 1, 'e')")
        lite.commit()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with closing(sqlite3.connect(foreign / "aragora.db")) as lite:
        lite.execute("PRAGMA journal_mode = DELETE")
        lite.execute("CREATE TABLE notes (body TEXT)")
        lite.commit()

    def files(folder: Path) -> dict[Path, bytes]:
        # A WAL database's readers use its -shm (and -wal) files, whoever they are: the
        # database's own bytes are what must not change.
        return {
            p: p.read_bytes()
            for p in folder.rglob("*")
            if p.is_file() and not p.name.endswith(("-shm", "-wal"))
        }

    for folder, queued in ((migrated, "queued: 1"), (foreign, "queued: 0")):
        before = files(folder)
        for args in (["--status"], ["--dead-letter"]):
            out = cli(folder, target_dsn, *args)
            assert out.returncode == 0, out.stderr
        assert queued in cli(folder, target_dsn, "--status").stdout
        assert files(folder) == before
        if folder is foreign:
            assert sorted(p.name for p in folder.iterdir()) == ["aragora.db"]
    missing = tmp_path / "missing" / "data"
    out = cli(missing, target_dsn, "--status")
    assert out.returncode != 0 and "no database there" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "missing").exists()
