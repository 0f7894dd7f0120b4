"""SQL text and migration files built from data read at run time.

Found on an earlier main: ``aragora_migrate.dropped_keys.definition`` was pasted into
``ALTER TABLE ... ADD CONSTRAINT``, so a database owner who seeded
``CHECK (true); ALTER ROLE lowpriv SUPERUSER; --`` became superuser when a superuser ran
migrate-data; an index name holding a newline wrote ``-- migrate:up`` and an
``ALTER TABLE users DROP COLUMN`` into the migration import-sqlite generated.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from aragora_repos.errors import ConfigError, MigrationError
from aragora_repos.tools.import_sqlite import import_sqlite
from aragora_repos.tools.migrate_data import migrate_data
from codegen.analysis.lint import lint_migration
from codegen.analysis.schema import analyse_schema, sections

PAYLOAD = "\n-- migrate:up\nALTER TABLE users DROP COLUMN email;\n-- migrate:down\n"
#: Index names: kept exactly when they can be, renamed (and listed) when they hold a
#: line break or control character.
KEPT = ['quote"d; DROP TABLE x; --', "-- migrate:up"]
RENAMED = [f"idx{PAYLOAD}", "back\\slash\r\n-- migrate:down", "line\u2028sep", "tab\there"]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def hostile_source(path: Path, *, table: str = "users", column: str = "email") -> Path:
    db = sqlite3.connect(path)
    db.execute(
        f"CREATE TABLE {_q(table)} (id INTEGER PRIMARY KEY, {_q(column)} TEXT, "
        f"note TEXT DEFAULT 'x{PAYLOAD}y''z', plain TEXT DEFAULT 'it''s')"
    )
    for name in KEPT + RENAMED:
        db.execute(f"CREATE INDEX {_q(name)} ON {_q(table)} (id)")
    db.execute(f"CREATE INDEX partial_idx ON {_q(table)} (id) WHERE note <> 'a{PAYLOAD}'")
    db.execute(f"INSERT INTO {_q(table)} (id, {_q(column)}) VALUES (1, 'a@b')")
    db.commit()
    db.close()
    return path


def test_imported_names_and_values_cannot_write_marker_lines(tmp_path: Path) -> None:
    source = hostile_source(tmp_path / f"evil{PAYLOAD.splitlines()[1]}.db")
    result = import_sqlite(source, tmp_path / "schema")
    assert result.path is not None
    text = result.path.read_text()
    lines = text.splitlines()
    assert lines.count("-- migrate:up") == 1 and lines.count("-- migrate:down") == 1
    assert not any(line.startswith("ALTER TABLE") for line in lines)
    assert lint_migration(result.path.name, text) == []
    # The generator reads it as one table with its indexes.
    catalog, _ = analyse_schema({f"sql/schema/{result.path.name}": text})
    assert [t.name for t in catalog.tables] == ["users"]
    assert {i.name for i in catalog.indexes} >= set(KEPT)
    assert sum("renamed users_idx_" in g for g in result.guesses) == len(RENAMED)
    assert any("partial index predicate" in g and "not imported" in g for g in result.guesses)
    assert any("note" in g and "not translated" in g for g in result.guesses)


@pytest.mark.parametrize("where", ["table", "column"])
def test_a_table_or_column_name_with_a_line_break_is_refused(where: str, tmp_path: Path) -> None:
    bad = f"t{PAYLOAD}"
    source = hostile_source(
        tmp_path / "evil.db", **({"table": bad} if where == "table" else {"column": bad})
    )
    with pytest.raises(ConfigError, match="line break or control character"):
        import_sqlite(source, tmp_path / "schema")
    assert not (tmp_path / "schema").exists() or list((tmp_path / "schema").iterdir()) == []


@pytest.mark.postgres
async def test_imported_names_apply_exactly_on_postgresql(tmp_path: Path, target_dsn: str) -> None:
    source = hostile_source(tmp_path / "evil.db")
    result = import_sqlite(source, None)
    _, up, _, _ = sections(result.sql)
    conn = await asyncpg.connect(target_dsn)
    try:
        await conn.execute(up)
        indexes = {r[0] for r in await conn.fetch("SELECT indexname FROM pg_indexes")}
        assert set(KEPT) <= indexes
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'users' "
            "ORDER BY ordinal_position"
        )
        assert [r[0] for r in columns] == ["id", "email", "note", "plain"]
        row = await conn.fetchrow("INSERT INTO users (id) VALUES (2) RETURNING note, plain")
        assert row is not None and row["note"] is None and row["plain"] == "it's"
    finally:
        await conn.close()


async def superuser(conn: asyncpg.Connection, role: str) -> object:
    return await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = $1", role)


@pytest.mark.postgres
async def test_stored_constraint_text_is_never_run(tmp_path: Path, target_dsn: str) -> None:
    role = f"lowpriv_{os.getpid()}"
    source = tmp_path / "src.db"
    db = sqlite3.connect(source)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    db.commit()
    db.close()
    conn = await asyncpg.connect(target_dsn)
    await conn.execute(f"CREATE ROLE {role} NOLOGIN")
    try:
        await conn.execute("CREATE TABLE t (id BIGINT PRIMARY KEY)")
        await conn.execute("CREATE SCHEMA aragora_migrate")
        # What an older version wrote, seeded by whoever owns the database.
        await conn.execute(
            "CREATE TABLE aragora_migrate.dropped_keys (schema_name text, table_name text, "
            "constraint_name text, definition text)"
        )
        await conn.execute(
            "INSERT INTO aragora_migrate.dropped_keys VALUES ('public', 't', 'k', $1)",
            f"CHECK (true); ALTER ROLE {role} SUPERUSER; --",
        )
        with pytest.raises(MigrationError, match="never run"):
            await migrate_data(source, target_dsn)
        assert await superuser(conn, role) is False
        # The structured record: hostile parts are quoted names or refused codes.
        await conn.execute("DROP TABLE aragora_migrate.dropped_keys")
        report = await migrate_data(source, target_dsn)  # creates the state tables
        assert report.tables["t"].migrated == 0
        await conn.execute("CREATE TABLE p (id BIGINT PRIMARY KEY)")
        hostile = f'k"; ALTER ROLE {role} SUPERUSER; --'
        record = (
            "INSERT INTO aragora_migrate.set_aside_keys VALUES ('public', 't', $1, '{id}', "
            "'public', 'p', '{id}', 's', 'a', $2, false, false)"
        )
        await conn.execute(record, hostile, "a")
        report = await migrate_data(source, target_dsn)
        # Added back as one constraint whose name is exactly the recorded text.
        assert report.foreign_keys == [f"t.{hostile}"]
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM pg_constraint WHERE conname = $1 AND contype = 'f'", hostile
            )
            == 1
        )
        await conn.execute(record, "k2", "a; DROP TABLE p; --")
        with pytest.raises(MigrationError, match="not one PostgreSQL has"):
            await migrate_data(source, target_dsn)
        assert await superuser(conn, role) is False
    finally:
        await conn.execute("DROP SCHEMA IF EXISTS aragora_migrate CASCADE")
        await conn.execute(f"DROP ROLE {role}")
        await conn.close()
