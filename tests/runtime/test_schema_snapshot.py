"""The committed PostgreSQL snapshot (generated/schema/postgres.sql) applies to an empty
database with ``psql -f`` as the seeds document, and gives the schema the migrations give:
tables come after the tables they reference, and a cycle of foreign keys is closed by
ALTER TABLE once every table exists."""

from __future__ import annotations

import subprocess
from pathlib import Path

import asyncpg
import pytest

from aragora_db import connect
from aragora_repos import Config, Secret
from aragora_repos.backup import client_binary
from codegen.analysis.schema import analyse_schema
from codegen.render.schema import postgres_schema
from tests.pg_server import fresh_database, run_async

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parent.parent.parent
SHAPE = """
SELECT 'column', table_name || '.' || column_name || ' ' || data_type || ' '
       || is_nullable || ' ' || coalesce(column_default, '')
FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'schema_version'
UNION ALL
SELECT 'constraint', conrelid::regclass::text || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
  AND conrelid <> 'public.schema_version'::regclass::oid
UNION ALL
SELECT 'index', indexdef FROM pg_indexes
WHERE schemaname = 'public' AND tablename <> 'schema_version'
ORDER BY 1, 2
"""


def _psql(dsn: str, path: Path) -> None:
    psql = client_binary("psql")
    assert psql is not None, "psql is needed (postgresql-client)"
    done = subprocess.run(
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


async def _shape(dsn: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version int)")
        # The snapshot spells now() as sqlglot renders it, CURRENT_TIMESTAMP: the same
        # function (postgresql.org/docs/15/functions-datetime.html#FUNCTIONS-DATETIME-CURRENT).
        return sorted(
            (r[0], r[1].replace("CURRENT_TIMESTAMP", "now()")) for r in await conn.fetch(SHAPE)
        )
    finally:
        await conn.close()


async def _migrate(dsn: str) -> None:
    db = await connect(Config(backend="postgres", dsn=Secret(dsn), pool_max=2))
    try:
        await db.migrate()
    finally:
        await db.close()


def test_the_snapshot_applies_and_equals_the_migrations(postgres_dsn: str) -> None:
    with fresh_database(postgres_dsn) as snapshot, fresh_database(postgres_dsn) as migrated:
        _psql(snapshot, ROOT / "generated" / "schema" / "postgres.sql")
        run_async(_migrate(migrated))
        assert run_async(_shape(snapshot)) == run_async(_shape(migrated))


def test_a_cycle_of_foreign_keys_is_closed_after_the_tables(
    postgres_dsn: str, tmp_path: Path
) -> None:
    schema = """-- migrate:up
    CREATE TABLE b_team (id TEXT PRIMARY KEY, lead TEXT);
    CREATE TABLE a_person (id TEXT PRIMARY KEY, team TEXT REFERENCES b_team (id),
        mentor TEXT REFERENCES a_person (id));
    ALTER TABLE b_team ADD FOREIGN KEY (lead) REFERENCES a_person (id);
    CREATE TABLE c_badge (id TEXT PRIMARY KEY, holder TEXT REFERENCES a_person (id));
    """
    catalog, _ = analyse_schema({"0001_cycle.sql": schema})
    text = postgres_schema(catalog)
    assert text.index("CREATE TABLE a_person") < text.index("CREATE TABLE b_team")
    assert text.index("CREATE TABLE b_team") < text.index("CREATE TABLE c_badge")
    assert "ALTER TABLE a_person ADD FOREIGN KEY (team) REFERENCES b_team" in text
    assert postgres_schema(catalog) == text  # deterministic
    (tmp_path / "snapshot.sql").write_text(text)
    with fresh_database(postgres_dsn) as dsn:
        _psql(dsn, tmp_path / "snapshot.sql")
        keys = run_async(_shape(dsn))
    assert sum(1 for kind, row in keys if kind == "constraint" and "FOREIGN KEY" in row) == 4
