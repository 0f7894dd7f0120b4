"""The generator prepares every statement on a scratch PostgreSQL database when a server is
named: a statement sqlc accepts but PostgreSQL refuses, and a result sqlc types otherwise
than PostgreSQL returns it (now() - ts typed an integer), are reported with file:line:col
and nothing is written; without a server named, the same project generates (the output
never depends on it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.pg_server import run_async

ROOT = Path(__file__).parent.parent.parent
CONFIG = """version: "2"
sql:
  - name: "check_db"
    engine: "postgresql"
    schema: "sql/schema"
    queries: "sql/queries"
    gen:
      json:
        out: "build/sqlc"
        filename: "request.json"
"""
SCHEMA = """-- migrate:up
CREATE TABLE events (id BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ NOT NULL DEFAULT now());
"""
QUERIES = """-- name: EventAge :one
SELECT now() - at AS age FROM events WHERE id = $1;

-- name: Ids :many
-- A subquery in FROM without an alias: sqlc takes it, PostgreSQL 15 does not.
SELECT id FROM (SELECT id FROM events) ORDER BY id;

-- name: Fine :many
SELECT id, at FROM events ORDER BY id LIMIT sqlc.arg(lim);
"""


def _generate(root: Path, dsn: str | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("ARAGORA_CODEGEN_POSTGRES_DSN", None)
    if dsn is not None:
        env["ARAGORA_CODEGEN_POSTGRES_DSN"] = dsn
    return subprocess.run(
        [sys.executable, "-m", "codegen", "generate", "--root", str(root)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
    )


async def _scratch_databases(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'codegen_check_%'"
        )
        return [r[0] for r in rows]
    finally:
        await conn.close()


@pytest.mark.postgres
def test_statements_are_prepared_and_typed_on_postgresql(tmp_path: Path, postgres_dsn: str) -> None:
    root = tmp_path / "project"
    (root / "sql" / "schema").mkdir(parents=True)
    (root / "sql" / "queries").mkdir(parents=True)
    (root / "sqlc.yaml").write_text(CONFIG)
    (root / "sql" / "schema" / "0001_events.sql").write_text(SCHEMA)
    (root / "sql" / "queries" / "events.sql").write_text(QUERIES)
    before = run_async(_scratch_databases(postgres_dsn))

    checked = _generate(root, postgres_dsn)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    out = checked.stderr
    assert "sql/queries/events.sql:2:19: query EventAge: result column age is typed" in out
    assert "but PostgreSQL has interval; cast it (::interval)" in out
    # The refusal points at the subquery, on its own line of the file.
    assert "sql/queries/events.sql:6:16: query Ids: PostgreSQL rejected it:" in out
    assert "subquery in FROM must have an alias" in out
    assert "Fine" not in out  # its LIMIT argument is bigint on both sides
    assert not (root / "generated").exists()
    assert run_async(_scratch_databases(postgres_dsn)) == before  # dropped

    unchecked = _generate(root, None)
    assert unchecked.returncode == 0, unchecked.stderr

    unreachable = _generate(root, "postgresql://nobody@127.0.0.1:1/none")
    assert unreachable.returncode == 1
    assert "cannot reach PostgreSQL to check the statements" in unreachable.stderr


@pytest.mark.postgres
def test_encrypted_columns_are_checked_as_bytea(tmp_path: Path, postgres_dsn: str) -> None:
    """What is sealed into an encrypted column or opened from it travels as bytea, whatever
    the generated code types it: the check compares those with bytea (a project with
    encrypted text and jsonb columns passes it)."""
    import shutil

    root = tmp_path / "project"
    shutil.copytree(
        ROOT / "tests" / "golden" / "encrypted", root, ignore=shutil.ignore_patterns("expected")
    )
    checked = _generate(root, postgres_dsn)
    assert checked.returncode == 0, checked.stderr
    assert (root / "generated").exists()
