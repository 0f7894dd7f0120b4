"""Files, read-only commands, first migrations and waits.

Found on an earlier main: ``migrate status``, ``health`` and ``check`` switched a foreign
SQLite file to WAL for good and ``migrate --status`` created a missing data directory
and database; a failed first migration left a ``schema_version`` table; under umask 022
the database and its WAL/SHM were 0644; with ``DB_TIMEOUT=5`` a ``:many`` read waited the
whole 39.5 s another task held a transaction; a stuck migrator made the others wait
forever in silence.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from aragora_db import UserRole, connect
from aragora_db.__main__ import main as cli_main
from aragora_db.migrations import MIGRATIONS
from aragora_repos import Config, DatabaseBusy, MigrationError, Secret, open_async
from aragora_repos.backends.postgres import PostgresDatabase
from aragora_repos.migrations import ADVISORY_LOCK_KEY
from aragora_repos.tools.migrate_data import migrate_data
from tests.conftest import BACKENDS
from tests.pg_server import fresh_database

BROKEN = MIGRATIONS[0].__class__(
    1,
    "broken",
    "x",
    MIGRATIONS[0].up.__class__(
        ("CREATE TABLE a (x INT)", "SELECT * FROM no_such_table"),
        ("CREATE TABLE a (x INT) STRICT", "SELECT * FROM no_such_table"),
    ),
)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in (
        "DATABASE_URL",
        "ARAGORA_DATABASE_URL",
        "ARAGORA_POSTGRES_DSN",
        "ARAGORA_DB_BACKEND",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ARAGORA_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def test_read_only_commands_leave_a_foreign_file_byte_identical(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    foreign = env / "theirs.db"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    db.execute("INSERT INTO notes VALUES (1, 'x')")
    db.commit()
    db.close()
    assert sqlite3.connect(foreign).execute("PRAGMA journal_mode").fetchone() == ("delete",)
    monkeypatch.setenv("ARAGORA_SQLITE_PATH", str(foreign))
    before = digest(foreign)
    codes = [
        cli_main(["migrate", "--status"]),
        cli_main(["migrate", "status"]),
        cli_main(["migrate", "--dry-run"]),
        cli_main(["health"]),
        cli_main(["check"]),
    ]
    assert codes == [0, 0, 0, 0, 1]  # check: the file does not match sql/schema
    assert digest(foreign) == before
    assert sorted(p.name for p in env.iterdir()) == ["theirs.db"]  # no -wal, -shm, data/


def test_read_only_commands_create_nothing(env: Path) -> None:
    assert cli_main(["migrate", "--status"]) == 0
    assert cli_main(["migrate", "plan"]) == 0
    assert cli_main(["health"]) == 1
    assert cli_main(["check"]) == 1
    assert list(env.iterdir()) == []


def test_a_data_directory_that_cannot_exist_is_a_clear_error(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = env / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("ARAGORA_DATA_DIR", str(blocker / "data"))
    assert cli_main(["migrate", "up", "--no-backup"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot use folder") and str(blocker) in err


def test_not_a_database_names_the_file(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = env / "junk.db"
    junk.write_bytes(b"this is not a database file at all" * 100)
    monkeypatch.setenv("ARAGORA_SQLITE_PATH", str(junk))
    for argv in (["migrate", "status"], ["health"], ["migrate", "up", "--no-backup"]):
        assert cli_main(argv) == 1
        err = capsys.readouterr().err
        assert f"cannot open sqlite database {junk}" in err, err


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_failed_first_migration_leaves_the_database_as_it_was(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        path = tmp_path / "x.db"
        sqlite3.connect(path).close()
        db = await open_async(Config(sqlite_path=path))
        with pytest.raises(MigrationError):
            await db.migrate([BROKEN])
        await db.close()
        raw = sqlite3.connect(path)
        assert raw.execute("SELECT name FROM sqlite_schema").fetchall() == []
        raw.close()
        return
    with fresh_database(request.getfixturevalue("postgres_dsn")) as dsn:
        db = await open_async(Config(backend="postgres", dsn=Secret(dsn), pool_max=2))
        try:
            with pytest.raises(MigrationError):
                await db.migrate([BROKEN])
        finally:
            await db.close()
        conn = await asyncpg.connect(dsn)
        try:
            assert (
                await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
                == 0
            )
        finally:
            await conn.close()


def test_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:

        async def run() -> None:
            db = await connect(Config(data_dir=tmp_path / "a" / "b"))
            await db.migrate()
            await db.users.create_user(
                id="u",
                email="e",
                password_hash="h",
                password_salt="s",
                name="n",
                org_id=None,
                role=UserRole.MEMBER,
            )
            await db.close()

        asyncio.run(run())
    finally:
        os.umask(old)
    for folder in (tmp_path / "a", tmp_path / "a" / "b"):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    made = list((tmp_path / "a" / "b").iterdir())
    assert {p.name for p in made} >= {"aragora.db"}
    for f in made:
        assert f.stat().st_mode & 0o777 == 0o600, f


@pytest.mark.postgres
async def test_reject_files_are_private_and_never_follow_a_planted_link(
    tmp_path: Path, target_dsn: str
) -> None:
    source = tmp_path / "src.db"
    db = sqlite3.connect(source)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)")
    db.executemany("INSERT INTO t VALUES (?, ?)", [(1, 1), (2, 2**40)])
    db.commit()
    db.close()
    conn = await asyncpg.connect(target_dsn)
    await conn.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, n INTEGER)")
    await conn.close()
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    reject = tmp_path / "src.db.rejects.jsonl"
    reject.symlink_to(victim)
    (tmp_path / f".{reject.name}.{os.getpid()}.tmp").symlink_to(victim)
    old = os.umask(0o022)
    try:
        report = await migrate_data(source, target_dsn)
    finally:
        os.umask(old)
    assert report.total_errors == 1
    assert victim.read_text() == "untouched"
    assert not reject.is_symlink() and reject.stat().st_mode & 0o777 == 0o600
    assert "out of range" in reject.read_text()


async def test_sqlite_waits_end_at_db_timeout(tmp_path: Path) -> None:
    db = await connect(Config(data_dir=tmp_path, timeout=0.3))
    await db.migrate()
    holding = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with db.transaction():
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await holding.wait()
    outcomes = []
    for call in (
        db.users.list_users_by_recent_login(lim=5),
        db.users.record_login(id="nobody"),
        db.users.delete_user(id="nobody"),
    ):
        try:
            await call
            outcomes.append("ran")
        except DatabaseBusy as exc:
            outcomes.append("busy" if "DB_TIMEOUT" in str(exc) else str(exc))
    release.set()
    await holder
    assert outcomes == ["busy", "busy", "busy"]
    assert await db.users.list_users_by_recent_login(lim=5) == []
    await db.close()


@pytest.mark.postgres
async def test_a_stuck_migrator_is_named_and_given_up_on(
    postgres_dsn: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aragora_repos.backends.postgres.migrate as pg

    monkeypatch.setattr(pg, "_LOCK_REPORT_EVERY", 0.2)
    with fresh_database(postgres_dsn) as dsn:
        stuck = await asyncpg.connect(dsn, server_settings={"application_name": "stuck-migrator"})
        try:
            assert await stuck.fetchval("SELECT pg_try_advisory_lock($1)", ADVISORY_LOCK_KEY)
            config = Config(
                backend="postgres", dsn=Secret(dsn), pool_max=2, migration_lock_timeout=1.0
            )
            db = await open_async(config)
            try:
                with (
                    caplog.at_level(logging.WARNING, logger="aragora_repos.migrations"),
                    pytest.raises(MigrationError) as info,
                ):
                    await db.migrate(MIGRATIONS)
            finally:
                await db.close()
            message = str(info.value)
            assert "stuck-migrator" in message and f"pid {stuck.get_server_pid()}" in message
            assert "ARAGORA_MIGRATION_LOCK_TIMEOUT" in message
            assert any("held by pid" in r.getMessage() for r in caplog.records)
        finally:
            await stuck.close()


@pytest.mark.postgres
async def test_a_full_server_is_waited_for_not_failed(postgres_dsn: str) -> None:
    """A role's connection limit answers 53300 like a full max_connections (found: 275
    failures under load, none retried)."""
    from aragora_repos.dsn import parse_dsn

    role = f"limited_{os.getpid()}"
    with fresh_database(postgres_dsn) as dsn:
        admin = await asyncpg.connect(dsn)
        await admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 2")
        await admin.execute(f"GRANT ALL ON SCHEMA public TO {role}")
        try:
            base = parse_dsn(dsn)
            host, port = base.hosts[0]
            as_role = f"postgresql://{role}@{host}:{port}/{base.database}"
            db = await open_async(
                Config(
                    backend="postgres", dsn=Secret(as_role), pool_min=1, pool_max=4, pool_timeout=30
                )
            )
            other = await asyncpg.connect(as_role)  # the role's second and last slot
            refused = asyncio.Event()

            class Seen(logging.Handler):
                def emit(self, record: logging.LogRecord) -> None:
                    if "53300" in record.getMessage():
                        refused.set()

            seen = Seen()
            logging.getLogger("aragora_repos.pool").addHandler(seen)
            logging.getLogger("aragora_repos.pool").setLevel(logging.INFO)
            holding, release = asyncio.Event(), asyncio.Event()

            async def hold() -> None:
                async with db.transaction():
                    holding.set()
                    await release.wait()

            assert isinstance(db, PostgresDatabase)

            async def work() -> int:
                assert isinstance(db, PostgresDatabase)
                return int((await db.fetch("SELECT 1", ()))[0][0])

            try:
                holder = asyncio.create_task(hold())
                await holding.wait()
                needy = asyncio.create_task(db.run_in_transaction(work))
                await refused.wait()  # the server said 53300 and the pool is retrying
                await other.close()
                assert await needy == 1
                release.set()
                await holder
            finally:
                logging.getLogger("aragora_repos.pool").removeHandler(seen)
                await db.close()
        finally:
            await admin.execute(f"DROP OWNED BY {role}")
            await admin.execute(f"DROP ROLE {role}")
            await admin.close()
