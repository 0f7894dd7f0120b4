"""Migration runner under concurrency, failures, kills and tampering, on both backends.

Each test prints a ``FIGURE`` line (run with ``-s`` to see them). CI runs
``ARAGORA_RELIABILITY_ROUNDS`` rounds of the concurrent test (default 3);
``make reliability`` runs the full 20.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from aragora_db.migrations import MIGRATIONS
from aragora_repos import AsyncBackend, Config, MigrationError, Secret, open_async
from aragora_repos.backends.postgres import PostgresDatabase
from aragora_repos.backends.sqlite import AsyncSqliteDatabase
from aragora_repos.migrations import Migration, Section
from tests.conftest import BACKENDS
from tests.pg_server import fresh_database

ROOT = Path(__file__).parent.parent.parent
ROUNDS = int(os.environ.get("ARAGORA_RELIABILITY_ROUNDS", "3"))
FAIL = "SELECT * FROM no_such_table_for_failure_injection"


@contextmanager
def target(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh SQLite path or PostgreSQL database DSN."""
    if backend == "sqlite":
        path = tmp_path / f"db-{time.monotonic_ns()}.sqlite"
        yield str(path)
    else:
        with fresh_database(request.getfixturevalue("postgres_dsn")) as dsn:
            yield dsn


def start_migrator(where: str, module: str = "tests.reliability.sample_migrations") -> Any:
    """A migrator process (tests/reliability/migrator.py) waiting for its start line."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.migrator", where, module],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@asynccontextmanager
async def opened(where: str) -> AsyncIterator[AsyncBackend]:
    config = (
        Config(backend="postgres", dsn=Secret(where), pool_max=2)
        if where.startswith("postgres")
        else Config(sqlite_path=Path(where))
    )
    db = await open_async(config)
    try:
        yield db
    finally:
        await db.close()


async def snapshot(db: AsyncBackend) -> list[Any]:
    """Schema and version table, comparable across runs (no timestamps)."""
    if isinstance(db, PostgresDatabase):
        queries = [
            "SELECT table_name, column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = current_schema() "
            "ORDER BY 1, ordinal_position",
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "ORDER BY 1",
            "SELECT t.typname, e.enumlabel FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid "
            "ORDER BY 1, e.enumsortorder",
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE connamespace = current_schema()::regnamespace "
            "ORDER BY 1, 2",
        ]
        out: list[Any] = [[tuple(r) for r in await db.fetch(q, ())] for q in queries]
    else:
        assert isinstance(db, AsyncSqliteDatabase)
        out = [
            await db.run(
                db.connection.fetchall,
                "SELECT type, name, sql FROM sqlite_schema ORDER BY name",
                (),
            )
        ]
    out.append(sorted((a.version, a.checksum, a.success) for a in (await db.applied()).values()))
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_migrators_apply_each_migration_once(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    doubles = errors = 0
    for _ in range(ROUNDS):
        with target(backend, tmp_path, request) as where:
            procs = [start_migrator(where) for _ in range(8)]
            for p in procs:  # every process is ready; then all start at once
                assert p.stdout is not None and p.stdout.readline().strip() == "ready"
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.flush()
            results = [p.communicate(timeout=120) for p in procs]
            errors += sum(p.returncode != 0 for p in procs)
            applied = sorted(
                v for out, _ in results if out.strip() for v in json.loads(out.splitlines()[-1])
            )

            async def counts(where: str = where) -> list[Any]:
                async with opened(where) as db:
                    rows: list[Any]
                    if isinstance(db, PostgresDatabase):
                        rows = await db.fetch(
                            "SELECT migration, count(*) FROM runs GROUP BY 1 ORDER BY 1", ()
                        )
                    else:
                        assert isinstance(db, AsyncSqliteDatabase)
                        rows = await db.run(
                            db.connection.fetchall,
                            "SELECT migration, count(*) FROM runs GROUP BY 1 ORDER BY 1",
                            (),
                        )
                    return [tuple(r) for r in rows] + [len(await db.applied())]

            seen = asyncio.run(counts())
            doubles += applied != [1, 2, 3, 4] or seen != [(2, 1), (4, 1), 4]
            assert errors == 0, [err for _, err in results if err]
    print(
        f"\nFIGURE concurrent migrators [{backend}]: {ROUNDS} rounds x 8 processes; rounds "
        f"with a migration applied more than once or missing: {doubles}; failed processes: "
        f"{errors}"
    )
    assert doubles == 0


@pytest.mark.parametrize("backend", BACKENDS)
async def test_failure_in_the_last_statement_changes_nothing(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    differences = 0
    for i, m in enumerate(MIGRATIONS):
        broken = dataclasses.replace(
            m,
            up=dataclasses.replace(
                m.up, postgres=(*m.up.postgres, FAIL), sqlite=(*m.up.sqlite, FAIL)
            ),
        )
        with target(backend, tmp_path, request) as where:
            async with opened(where) as db:
                await db.migrate(MIGRATIONS[:i])
                before = await snapshot(db)
                with pytest.raises(MigrationError):
                    await db.migrate([*MIGRATIONS[:i], broken])
                differences += before != await snapshot(db)
    print(
        f"\nFIGURE failure injected into the last statement [{backend}]: {len(MIGRATIONS)} "
        f"migrations, schema or version-table differences: {differences}"
    )
    assert differences == 0


@pytest.mark.parametrize("backend", BACKENDS)
async def test_dry_run_changes_nothing_and_prints_what_runs(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with target(backend, tmp_path, request) as where:
        async with opened(where) as db:
            before = await snapshot(db)
            steps = await db.plan(MIGRATIONS)
            assert await snapshot(db) == before
            executed: list[str] = []
            assert await db.migrate(MIGRATIONS, on_statement=executed.append) == [
                m.version for m in MIGRATIONS
            ]
            planned = [s for step in steps for s in step.texts]
            assert executed == planned and len(planned) > 5
            down_steps = await db.plan(MIGRATIONS, target=0, down=True)
            undone: list[str] = []
            await db.migrate_down(MIGRATIONS, target=0, on_statement=undone.append)
            assert undone == [s for step in down_steps for s in step.texts]
    print(
        f"\nFIGURE dry run [{backend}]: {len(planned)} planned statements, executed the same "
        f"{len(executed)} in order; schema unchanged by planning"
    )


@pytest.mark.parametrize("backend", BACKENDS)
async def test_up_down_up_gives_the_same_schema(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    mismatches = 0
    with target(backend, tmp_path, request) as where:
        async with opened(where) as db:
            for m in MIGRATIONS:
                await db.migrate(MIGRATIONS, target=m.version)
                applied_state = await snapshot(db)
                await db.migrate_down(MIGRATIONS, target=m.version - 1)
                await db.migrate(MIGRATIONS, target=m.version)
                mismatches += applied_state != await snapshot(db)
    print(
        f"\nFIGURE up/down/up [{backend}]: {len(MIGRATIONS)} reversible migrations, snapshot "
        f"mismatches: {mismatches}"
    )
    assert mismatches == 0


def _slow(transactional: bool) -> tuple[Migration, ...]:
    sleep_pg = "SELECT pg_sleep(3)"
    # About three seconds of work for SQLite, in one statement.
    sleep_sqlite = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
        "WHERE x < 30000000) SELECT count(*) FROM c"
    )
    return (
        Migration(
            1,
            "slow",
            "slow",
            Section(
                (
                    "CREATE TABLE IF NOT EXISTS slow_a (id INT)",
                    sleep_pg,
                    "CREATE TABLE IF NOT EXISTS slow_b (id INT)",
                ),
                (
                    "CREATE TABLE slow_a (id INTEGER) STRICT",
                    sleep_sqlite,
                    "CREATE TABLE slow_b (id INTEGER) STRICT",
                ),
                transactional=transactional,
            ),
        ),
    )


@pytest.mark.parametrize(
    ("backend", "transactional"),
    [
        ("sqlite", True),  # every SQLite step runs in a transaction
        pytest.param("postgres", True, marks=pytest.mark.postgres),
        pytest.param("postgres", False, marks=pytest.mark.postgres),
    ],
)
async def test_sigkill_during_a_migration(
    backend: str, transactional: bool, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    module = f"tests.reliability.slow_{'tx' if transactional else 'notx'}"
    with target(backend, tmp_path, request) as where:
        proc = start_migrator(where, module)
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.stdin.write("go\n")
        proc.stdin.flush()
        # Killed once the slow statement (about 3 s) has been handed to the database.
        for line in proc.stdout:
            if line.startswith(("statement: SELECT pg_sleep", "statement: WITH RECURSIVE")):
                break
        assert proc.poll() is None, proc.communicate()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        migrations = _slow(transactional)
        async with opened(where) as db:
            state = await snapshot(db)
            tables = json.dumps(state)
            if transactional:
                # Nothing of the step survives, and nothing claims it was applied.
                assert "slow_a" not in tables and not state[-1]
                assert await db.migrate(migrations) == [1]
            else:
                assert state[-1] == [(1, "slow", False)]
                with pytest.raises(MigrationError, match="interrupted part way"):
                    await db.migrate(migrations)
                assert await db.repair() == [1]
                assert await db.migrate(migrations) == [1]
            final = json.dumps(await snapshot(db))
            assert "slow_a" in final and "slow_b" in final
    outcome = (
        "rolled back, rerun completed"
        if transactional
        else "refused as interrupted, repaired, rerun completed"
    )
    print(f"\nFIGURE SIGKILL mid-migration [{backend}, transactional={transactional}]: {outcome}")


@pytest.mark.parametrize("backend", BACKENDS)
async def test_tampered_migration_is_refused_before_any_ddl(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    source = (ROOT / "sql/schema/0001_users_and_organizations.sql").read_bytes()
    rng = random.Random(20261122)
    detected = 0
    with target(backend, tmp_path, request) as where:
        async with opened(where) as db:
            await db.migrate(MIGRATIONS[:1])
            before = await snapshot(db)
            for _ in range(20):
                data = bytearray(source)
                pos = rng.randrange(len(data))
                data[pos] = (data[pos] + rng.randrange(1, 255)) % 256
                tampered = dataclasses.replace(
                    MIGRATIONS[0], checksum=hashlib.sha256(data).hexdigest()
                )
                try:
                    await db.migrate([tampered, *MIGRATIONS[1:]])
                except MigrationError as exc:
                    detected += "changed after it was applied" in str(exc)
            assert await snapshot(db) == before
    print(f"\nFIGURE tampered migration [{backend}]: detected {detected} of 20, schema unchanged")
    assert detected == 20


@pytest.mark.parametrize("backend", BACKENDS)
async def test_backup_restores_the_pre_migration_state(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with target(backend, tmp_path, request) as where:
        async with opened(where) as db:
            await db.migrate(MIGRATIONS[:1])
            insert = "INSERT INTO users (id, email, password_hash, password_salt) " + (
                "VALUES ($1, $2, 'h', 's')"
                if backend == "postgres"
                else "VALUES (?1, ?2, 'h', 's')"
            )
            for i in range(50):
                if isinstance(db, PostgresDatabase):
                    await db.execute(insert, (f"u{i}", f"u{i}@x"))
                else:
                    assert isinstance(db, AsyncSqliteDatabase)
                    await db.run(db.connection.execute, insert, (f"u{i}", f"u{i}@x"))
            before = await snapshot(db)
            rows_sql = "SELECT id, email FROM users ORDER BY id"
            rows_before = await _rows(db, rows_sql)
            backup = await db.backup(tmp_path / "backup")
            assert backup is not None and backup.stat().st_size > 0
            await db.migrate(MIGRATIONS)
            assert await snapshot(db) != before
        restored_where = _restore(backend, backup, tmp_path, request)
        with restored_where as restored:
            async with opened(restored) as rdb:
                assert await snapshot(rdb) == before
                assert await _rows(rdb, rows_sql) == rows_before
    print(
        f"\nFIGURE backup [{backend}]: restored copy equals the pre-migration schema, "
        f"version table and {len(rows_before)} rows"
    )


async def _rows(db: AsyncBackend, sql: str) -> list[tuple[Any, ...]]:
    if isinstance(db, PostgresDatabase):
        return [tuple(r) for r in await db.fetch(sql, ())]
    assert isinstance(db, AsyncSqliteDatabase)
    return await db.run(db.connection.fetchall, sql, ())


@contextmanager
def _restore_pg(backup: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    with fresh_database(request.getfixturevalue("postgres_dsn")) as dsn:
        binary = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_restore"))[-1]
        subprocess.run(
            [str(binary), "--no-owner", f"--dbname={dsn}", str(backup)],
            check=True,
            capture_output=True,
        )
        yield dsn


@contextmanager
def _restore_sqlite(backup: Path) -> Iterator[str]:
    assert sqlite3.connect(backup).execute("PRAGMA integrity_check").fetchone() == ("ok",)
    yield str(backup)


def _restore(backend: str, backup: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    return _restore_pg(backup, request) if backend == "postgres" else _restore_sqlite(backup)
