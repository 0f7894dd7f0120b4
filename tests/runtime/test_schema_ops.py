"""Schema operations on real databases: SQLite table rebuilds keep data, PostgreSQL
migrations fail fast on a lock, drift is detected, and the CLI drives it all."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from aragora_db.__main__ import main as cli_main
from aragora_db.migrations import MIGRATIONS
from aragora_db.schema import EXPECTED
from aragora_repos import Config, MigrationError, Secret, open_async
from aragora_repos.backends.postgres import PostgresDatabase
from aragora_repos.backends.sqlite import AsyncSqliteDatabase
from aragora_repos.drift import validate_schema
from aragora_repos.migrations import Migration, Section
from codegen.analysis.schema import analyse_schema, read_migrations
from codegen.model import ir
from tests.conftest import BACKENDS
from tests.pg_server import fresh_database

ROOT = Path(__file__).parent.parent.parent

REBUILD = """-- migrate:up
ALTER TABLE users DROP COLUMN avatar_url;
ALTER TABLE users ALTER COLUMN name SET DEFAULT 'anonymous';
ALTER TABLE users ALTER COLUMN failed_login_count TYPE BIGINT;
ALTER TABLE organizations ADD CONSTRAINT slug_lower CHECK (slug = lower(slug));
-- migrate:down
ALTER TABLE organizations DROP CONSTRAINT slug_lower;
"""


def _runtime(m: ir.Migration) -> Migration:
    def section(s: ir.Section | None) -> Section | None:
        return (
            None if s is None else Section(s.postgres, s.sqlite, s.transactional, s.sqlite_rebuild)
        )

    up = section(m.up)
    assert up is not None
    return Migration(m.version, m.name, m.checksum, up, None)


def _with_extra(text: str) -> list[Migration]:
    files = read_migrations(ROOT, "sql/schema")
    files["sql/schema/9999_extra.sql"] = text.split("-- migrate:down")[0]
    return [_runtime(m) for m in analyse_schema(files)[1]]


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "sqlite":
        db = await open_async(Config(data_dir=tmp_path))
        yield db
        await db.close()
        return
    with fresh_database(request.getfixturevalue("postgres_dsn")) as dsn:
        db = await open_async(Config(backend="postgres", dsn=Secret(dsn), pool_max=3))
        yield db
        await db.close()


async def _sql(db: Any, sql_pg: str, sql_sqlite: str, args: tuple[Any, ...] = ()) -> list[Any]:
    if isinstance(db, PostgresDatabase):
        return [tuple(r) for r in await db.fetch(sql_pg, args)]
    assert isinstance(db, AsyncSqliteDatabase)
    return await db.run(db.connection.fetchall, sql_sqlite, args)


async def test_rebuild_keeps_rows_and_constraints(backend: Any) -> None:
    migrations = _with_extra(REBUILD)
    assert migrations[-1].up.sqlite_rebuild
    await backend.migrate(migrations[:-1])
    for i in range(20):
        await _sql(
            backend,
            "INSERT INTO users (id, email, password_hash, password_salt, "
            "avatar_url, failed_login_count) VALUES ($1, $2, 'h', 's', 'a', $3)",
            "INSERT INTO users (id, email, password_hash, password_salt, avatar_url, "
            "failed_login_count) VALUES (?1, ?2, 'h', 's', 'a', ?3)",
            (f"u{i}", f"{i}@x", i),
        )
    await _sql(
        backend,
        "INSERT INTO organizations (id, name, slug, owner_id) VALUES ('o', 'O', 'o', 'u1')",
        "INSERT INTO organizations (id, name, slug, owner_id) VALUES ('o', 'O', 'o', 'u1')",
    )
    assert await backend.migrate(migrations) == [9999]
    rows = await _sql(
        backend,
        "SELECT id, failed_login_count FROM users ORDER BY id",
        "SELECT id, failed_login_count FROM users ORDER BY id",
    )
    assert len(rows) == 20 and dict(rows)["u7"] == 7
    # The foreign key from organizations to users survived the rebuild of users.
    owner = await _sql(
        backend, "SELECT owner_id FROM organizations", "SELECT owner_id FROM organizations"
    )
    assert owner == [("u1",)]
    with pytest.raises(Exception, match=r"(?i)check|constraint"):
        await _sql(
            backend,
            "INSERT INTO organizations (id, name, slug) VALUES ('p', 'P', 'UP')",
            "INSERT INTO organizations (id, name, slug) VALUES ('p', 'P', 'UP')",
        )
    default = await _sql(
        backend,
        "INSERT INTO users (id, email, password_hash, password_salt) VALUES ('d', 'd', 'h', "
        "'s') RETURNING name",
        "INSERT INTO users (id, email, password_hash, password_salt) VALUES ('d', 'd', 'h', "
        "'s') RETURNING name",
    )
    assert default == [("anonymous",)]
    columns = await _sql(
        backend,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'",
        "SELECT name FROM pragma_table_info('users')",
    )
    assert ("avatar_url",) not in columns and ("name",) in columns


@pytest.mark.postgres
async def test_blocked_alter_fails_fast_on_the_lock_timeout(postgres_dsn: str) -> None:
    with fresh_database(postgres_dsn) as dsn:
        db = await PostgresDatabase.open(Secret(dsn))
        db._lock_timeout = 0.5
        try:
            await db.migrate(MIGRATIONS)
            holder = await asyncpg.connect(dsn)
            await holder.execute("BEGIN; SELECT * FROM users")  # ACCESS SHARE until rollback
            alter = Migration(
                9999,
                "alter",
                "a",
                Section(("ALTER TABLE users ADD COLUMN extra TEXT",), ("SELECT 1",)),
            )
            started = time.perf_counter()
            with pytest.raises(MigrationError, match="55P03"):
                await db.migrate([*MIGRATIONS, alter])
            waited = time.perf_counter() - started
            await holder.execute("ROLLBACK")
            await holder.close()
            assert await db.migrate([*MIGRATIONS, alter]) == [9999]  # retry succeeds
        finally:
            await db.close()
    print(
        f"\nFIGURE lock timeout: blocked ALTER failed after {waited:.2f} s "
        f"(lock_timeout 0.5 s), retry applied"
    )
    assert 0.4 < waited < 1.5


async def test_drift_is_detected(backend: Any) -> None:
    result = await validate_schema(backend, EXPECTED)
    assert not result.success and f"migrations end at {MIGRATIONS[-1].version}" in result.errors[0]
    await backend.migrate(MIGRATIONS)
    result = await validate_schema(backend, EXPECTED)
    assert result.success and result.errors == () and result.warnings == (), result.render()
    await _sql(
        backend,
        "ALTER TABLE audit_log DROP COLUMN user_agent",
        "ALTER TABLE audit_log DROP COLUMN user_agent",
    )
    await _sql(
        backend,
        "ALTER TABLE users ADD COLUMN surprise TEXT",
        "ALTER TABLE users ADD COLUMN surprise TEXT",
    )
    await _sql(backend, "CREATE TABLE stray (id INT)", "CREATE TABLE stray (id INT)")
    await _sql(backend, "DROP INDEX idx_users_org_id", "DROP INDEX idx_users_org_id")
    result = await validate_schema(backend, EXPECTED)
    assert set(result.errors) == {
        "column audit_log.user_agent is missing",
        "index idx_users_org_id on users is missing",
    }
    assert set(result.warnings) == {
        "column users.surprise is not in sql/schema",
        "table stray is not in sql/schema",
    }


async def test_drift_reports_type_and_nullability(backend: Any) -> None:
    await backend.migrate(MIGRATIONS)
    if isinstance(backend, PostgresDatabase):
        await backend.execute("ALTER TABLE users ALTER COLUMN name DROP NOT NULL", ())
        await backend.execute("ALTER TABLE usage_events ALTER COLUMN count TYPE bigint", ())
        expected = {
            "column users.name is nullable, expected NOT NULL",
            "column usage_events.count has type int8, expected int4",
        }
    else:
        await backend.run(
            backend.connection.execute, "ALTER TABLE users RENAME COLUMN name TO name_old", ()
        )
        await backend.run(backend.connection.execute, "ALTER TABLE users ADD COLUMN name REAL", ())
        expected = {
            "column users.name has type REAL, expected TEXT",
            "column users.name is nullable, expected NOT NULL",
        }
    result = await validate_schema(backend, EXPECTED)
    assert set(result.errors) == expected


def sqlite_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's backend: SQLite under ``tmp_path/data``, whatever the environment says."""
    monkeypatch.setenv("ARAGORA_DATA_DIR", str(tmp_path / "data"))
    for var in ("DATABASE_URL", "ARAGORA_DATABASE_URL", "ARAGORA_POSTGRES_DSN"):
        monkeypatch.delenv(var, raising=False)


def test_cli_flag_and_subcommand_forms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sqlite_here(tmp_path, monkeypatch)

    def run(*argv: str) -> tuple[int, str]:
        code = cli_main(list(argv))
        return code, capsys.readouterr().out

    code, out = run("migrate", "--status")
    assert code == 0 and "current version: none" in out and "0002_audit_and_usage  pending" in out
    code, out = run("migrate", "--dry-run")
    assert code == 0 and "-- up 0001_users_and_organizations (sqlite" in out
    # Commands that only look create nothing, not even the data directory.
    assert not (tmp_path / "data").exists()
    code = cli_main(["check"])
    assert code == 1 and "no database there" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()
    code, out = run("migrate", "--migrate")
    assert code == 0 and "applied: 0001, 0002, 0003" in out and "backup:" in out
    assert run("check") == (0, "schema ok: the database matches sql/schema\n")
    code, out = run("migrate", "plan")
    assert "nothing to do" in out
    code, out = run("migrate", "--rollback", "--no-backup")
    assert code == 0 and f"rolled back: {MIGRATIONS[-1].version:04d}" in out
    code, out = run("migrate", "--rollback-to", "0", "--dry-run")
    assert "-- down 0001_users_and_organizations" in out and "DROP TABLE users" in out
    code, out = run("migrate", "up", "--no-backup")
    assert f"applied: {MIGRATIONS[-1].version:04d}" in out
    schema_dir = tmp_path / "schema"
    code, out = run(
        "migrate", "--create", "Add user lockout fields", "--schema-dir", str(schema_dir)
    )
    created = schema_dir / "0001_add_user_lockout_fields.sql"
    assert code == 0 and created.read_text().startswith(
        "-- Add user lockout fields\n-- migrate:up\n"
    )
    code, out = run("migrate", "create", "second one", "--schema-dir", str(schema_dir))
    assert (schema_dir / "0002_second_one.sql").exists()


@pytest.mark.postgres
def test_cli_on_postgres_with_pg_dump_backup(
    postgres_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ARAGORA_DATA_DIR", str(tmp_path / "data"))
    with fresh_database(postgres_dsn) as dsn:
        canary = dsn.replace("postgresql://postgres@", "postgresql://postgres:CANARY9@")
        assert cli_main(["--database-url", canary, "migrate", "--migrate"]) == 0
        out = capsys.readouterr()
        assert "applied: 0001, 0002" in out.out and ".dump" in out.out
        assert "CANARY9" not in out.out + out.err
        assert cli_main(["--database-url", canary, "check"]) == 0
        dumps = list((tmp_path / "data" / "backup").rglob("*.dump"))
        assert len(dumps) == 1 and dumps[0].stat().st_size > 0


async def test_startup_check_refuses_drift_unless_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aragora_db import connect

    config = Config(data_dir=tmp_path)
    monkeypatch.delenv("ARAGORA_SKIP_SCHEMA_VALIDATION", raising=False)
    with pytest.raises(MigrationError, match="cannot start: the database schema differs"):
        await connect(config, check_schema=True)
    monkeypatch.setenv("ARAGORA_SKIP_SCHEMA_VALIDATION", "1")
    db = await connect(config, check_schema=True)
    await db.migrate()
    await db.close()
    monkeypatch.delenv("ARAGORA_SKIP_SCHEMA_VALIDATION")
    db = await connect(config, check_schema=True)
    assert (await db.validate_schema()).success
    await db.close()


def test_the_runtime_cli_alone_says_what_migrate_and_check_need(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``aragora_repos.cli.main`` imports no generated package: without an App, the
    commands that need one say how to run them, and change nothing."""
    from aragora_repos import cli

    sqlite_here(tmp_path, monkeypatch)
    assert cli.main(["migrate", "--status"]) == 1
    assert cli.main(["check"]) == 1
    err = capsys.readouterr().err
    assert err.count("python -m aragora_db") == 2, err
    assert cli.main(["schema-diff", "--base", "HEAD"]) == 2
    assert "pip install 'aragora-repos[codegen]'" in capsys.readouterr().err
    assert cli.main(["generate"]) == 2
    assert "generate needs the generator" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()
    seen: list[list[str]] = []

    def review(argv: list[str]) -> int:
        seen.append(argv)
        return 0

    app = cli.App(review=review)
    assert cli.main(["schema-diff", "--base", "HEAD"], app=app) == 0
    assert seen and seen[0][:2] == ["--base", "HEAD"]


@pytest.mark.parametrize(
    "argv",
    [
        ["migrate", "--rollback", "--migrate"],
        ["migrate", "up", "--rollback"],
        ["migrate", "--status", "--repair"],
        ["migrate", "--create", "x", "--rollback-to", "1"],
        ["migrate", "status", "--dry-run"],
        ["migrate", "repair", "--to", "3"],
        ["migrate", "--rollback-to", "1", "--to", "2"],
        ["migrate", "up", "extra-word"],
    ],
    ids=lambda argv: " ".join(argv[1:]),
)
def test_conflicting_migrate_arguments_are_refused(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sqlite_here(tmp_path, monkeypatch)
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("aragora-repos: error: migrate") and err[-1] == "\n", err
    assert not (tmp_path / "data").exists()  # nothing was opened, let alone changed


def test_a_target_no_migration_has_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sqlite_here(tmp_path, monkeypatch)
    latest = MIGRATIONS[-1].version
    assert cli_main(["migrate", "up", "--to", str(latest + 35), "--no-backup"]) == 1
    err = capsys.readouterr().err
    assert f"cannot migrate up to version {latest + 35}: no migration has that version" in err
    assert f"0001 to {latest:04d}" in err
    assert cli_main(["migrate", "up", "--to", "1", "--no-backup"]) == 0  # a real one applies
    assert cli_main(["migrate", "--rollback-to", str(latest + 1)]) == 1
    assert "cannot migrate down" in capsys.readouterr().err
    assert cli_main(["migrate", "--rollback-to", "0", "--no-backup"]) == 0


def test_options_go_before_or_after_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    from aragora_repos import cli

    parser = cli.parser()
    after = parser.parse_args(["check", "--database-url", "postgresql://a@h/d"])
    before = parser.parse_args(["--database-url", "postgresql://b@h/d", "check"])
    both = parser.parse_args(
        ["--database-url", "postgresql://b@h/d", "health", "--database-url", "postgresql://c@h/d"]
    )
    neither = parser.parse_args(["health"])
    assert (after.database_url, before.database_url) == ("postgresql://a@h/d", "postgresql://b@h/d")
    assert both.database_url == "postgresql://c@h/d" and neither.database_url is None


def test_migrate_create_finds_the_project_or_says_it_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    (project / "sql" / "schema").mkdir(parents=True)
    (project / "sqlc.yaml").write_text('version: "2"\n')
    (project / "app" / "deep").mkdir(parents=True)
    monkeypatch.chdir(project / "app" / "deep")
    assert cli_main(["migrate", "create", "Add lockout"]) == 0
    assert [p.name for p in (project / "sql" / "schema").iterdir()] == ["0001_add_lockout.sql"]
    assert not (project / "app" / "deep" / "sql").exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli_main(["migrate", "--create", "Add lockout"]) == 2
    assert "cannot find the project: no sqlc.yaml" in capsys.readouterr().err
    assert list(elsewhere.iterdir()) == []
    assert cli_main(["migrate", "create", "Add x", "--schema-dir", "mine"]) == 0
    assert [p.name for p in (elsewhere / "mine").iterdir()] == ["0001_add_x.sql"]


def test_the_package_cli_generates_with_the_generator_installed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``aragora-repos generate --check`` runs the generator it was handed: this
    repository's generated/ is current."""
    root = Path(__file__).parent.parent.parent
    assert cli_main(["generate", "--check", "--root", str(root)]) == 0
    assert capsys.readouterr().err == ""


def test_offline_plans_need_no_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sqlite_here(tmp_path, monkeypatch)
    latest = MIGRATIONS[-1].version
    assert cli_main(["migrate", "plan", "--offline"]) == 0
    everything = capsys.readouterr().out
    assert everything.count("-- up ") == len(MIGRATIONS) and "(sqlite," in everything
    argv = ["migrate", "plan", "--offline", "--from", "3", "--to", "5", "--dialect", "postgres"]
    assert cli_main(argv) == 0
    some = capsys.readouterr().out
    assert [line.split()[2] for line in some.splitlines() if line.startswith("-- up ")] == [
        m.label for m in MIGRATIONS if 3 < m.version <= 5
    ]
    assert "(postgresql," in some
    argv = ["migrate", "--rollback-to", "2", "--dry-run", "--offline", "--from", str(latest)]
    assert cli_main(argv) == 0
    downs = [line.split()[2] for line in capsys.readouterr().out.splitlines() if "-- down" in line]
    assert downs == [m.label for m in reversed(MIGRATIONS) if m.version > 2]
    assert not (tmp_path / "data").exists()
    assert cli_main(["migrate", "up", "--offline"]) == 2  # applying needs a database
    assert cli_main(["migrate", "plan", "--from", "3"]) == 2  # --from is offline's
    assert cli_main(["migrate", "plan", "--offline", "--from", str(latest + 1)]) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_stamp_records_an_existing_schema_without_running_anything(
    backend: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    """Alembic's stamp: a database whose schema already is the latest gets its versions
    recorded; one whose schema differs is refused and left as it was."""
    sqlite_here(tmp_path, monkeypatch)
    with contextlib.ExitStack() as stack:
        url: list[str] = []
        if backend == "postgres":
            dsn = stack.enter_context(fresh_database(request.getfixturevalue("postgres_dsn")))
            url = ["--database-url", dsn]
        assert cli_main([*url, "migrate", "stamp"]) == (2 if backend == "sqlite" else 1)
        capsys.readouterr()
        assert cli_main([*url, "migrate", "up", "--no-backup"]) == 0
        drop = "DROP TABLE schema_version"
        run_sql(backend, tmp_path, url, drop)
        run_sql(backend, tmp_path, url, "ALTER TABLE users RENAME TO users_old")
        assert cli_main([*url, "migrate", "stamp"]) == 1
        assert "not stamped" in capsys.readouterr().err
        assert not has_schema_version(backend, tmp_path, url)  # left as it was
        run_sql(backend, tmp_path, url, "ALTER TABLE users_old RENAME TO users")
        assert cli_main([*url, "migrate", "stamp"]) == 0
        assert f"stamped: version {MIGRATIONS[-1].version:04d}" in capsys.readouterr().out
        assert cli_main([*url, "migrate", "--status"]) == 0
        assert "pending" not in capsys.readouterr().out
        assert cli_main([*url, "migrate", "stamp"]) == 1  # already recorded: refused
        assert "already records migrations" in capsys.readouterr().err


def run_sql(backend: str, tmp_path: Path, url: list[str], sql: str) -> None:
    if backend == "sqlite":
        conn = sqlite3.connect(tmp_path / "data" / "aragora.db")
        try:
            conn.execute(sql)
            conn.commit()
        finally:
            conn.close()
        return

    async def run() -> None:
        conn = await asyncpg.connect(url[1])
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def has_schema_version(backend: str, tmp_path: Path, url: list[str]) -> bool:
    if backend == "sqlite":
        conn = sqlite3.connect(tmp_path / "data" / "aragora.db")
        try:
            return bool(
                conn.execute(
                    "SELECT count(*) FROM sqlite_schema WHERE name = 'schema_version'"
                ).fetchone()[0]
            )
        finally:
            conn.close()

    async def check() -> bool:
        conn = await asyncpg.connect(url[1])
        try:
            return bool(await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL"))
        finally:
            await conn.close()

    return asyncio.run(check())


def test_the_seeds_db_option_is_accepted_and_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sqlite_here(tmp_path, monkeypatch)
    assert cli_main(["migrate", "--dry-run", "--db", "users"]) == 0
    captured = capsys.readouterr()
    assert "-- up 0001_" in captured.out
    assert "--db users: this project keeps one migration stream" in captured.err
