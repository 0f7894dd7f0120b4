"""The import corpus end to end: every case imported into one project, the project
generated, migrated up on SQLite and on PostgreSQL, and each case's data copied into
PostgreSQL and verified. Nothing is retyped silently (every narrowing is a listed guess),
no table is left uncreated, no row is left behind."""

from __future__ import annotations

import importlib.util
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from aragora_repos.drift import ExpectedSchema
from aragora_repos.tools.convert import RULES
from aragora_repos.tools.import_sqlite import import_sqlite
from aragora_repos.tools.migrate_data import TablePlan, migrate_data, target_checksum_sql
from aragora_repos.tools.migrate_data.plan import target_columns
from aragora_repos.tools.migrate_data.sqlite_target import copy_into_sqlite
from tests.migrate_data import corpus
from tests.pg_server import fresh_database

ROOT = Path(__file__).parent.parent.parent
CONFIG = """version: "2"
options:
  aragora:
    out: "src"
sql:
  - name: "corpus_db"
    engine: "postgresql"
    schema: "sql/schema"
    queries: "sql/queries"
    gen:
      json:
        out: "build/sqlc"
        filename: "request.json"
"""
QUERIES = """-- name: CountItems :one
SELECT count(*) FROM items;

-- name: InvoiceLines :many
SELECT "InvoiceLineId", "UnitPrice", "Quantity" FROM "InvoiceLine" ORDER BY "InvoiceLineId";
"""


def _run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd / "src"), str(ROOT)])}
    proc = subprocess.run(
        [sys.executable, *args],
        env={**full, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path], list[str]]:
    root = tmp_path_factory.mktemp("corpus_project")
    sources = root / "sources"
    sources.mkdir()
    (root / "sqlc.yaml").write_text(CONFIG)
    (root / "sql" / "queries").mkdir(parents=True)
    (root / "sql" / "queries" / "corpus.sql").write_text(QUERIES)
    built = {name: corpus.build(sources, name) for name in corpus.CASES}
    guesses: list[str] = []
    for name, path in built.items():
        result = import_sqlite(path, root / "sql" / "schema")
        assert result.path is not None, name
        guesses += result.guesses
    _run(root, "-m", "codegen", "generate", "--root", str(root))
    return root, built, guesses


def _expected(root: Path) -> ExpectedSchema:
    """The generated package's EXPECTED, imported from its file."""
    spec = importlib.util.spec_from_file_location(
        "corpus_schema", root / "src" / "corpus_db" / "schema.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected: ExpectedSchema = module.EXPECTED
    return expected


async def target_plan(conn: asyncpg.Connection) -> dict[str, TablePlan]:
    columns = await target_columns(conn, "public")
    return {t: TablePlan(t, c, [], []) for t, c in columns.items()}


async def _checksum(conn: asyncpg.Connection, table: str) -> str:
    """The canonical checksum of the stored rows, as the row path's verification has it."""
    plan = (await target_plan(conn))[table]
    row = await conn.fetchrow(target_checksum_sql("public", plan))
    assert row is not None
    return f"{int(row[1]) & 0xFFFFFFFFFFFFFFFF:016x}"


def _sums(detail: str) -> list[str]:
    return re.findall(r"checksum ([0-9a-f]{16})", detail)


def _types(sql: str) -> dict[str, str]:
    """``table.column`` -> declared type, from the imported migrations' CREATE TABLEs."""
    out: dict[str, str] = {}
    table = ""
    for line in sql.splitlines():
        if line.startswith("CREATE TABLE "):
            table = line.removeprefix("CREATE TABLE ").removesuffix(" (")
        parts = line.strip().rstrip(",").split(" ", 1)
        if line.startswith("    ") and len(parts) == 2 and not parts[0].isupper():
            out[f"{table}.{parts[0]}"] = parts[1]
    return out


def test_every_column_typed_as_intended(
    project: tuple[Path, dict[str, Path], list[str]],
) -> None:
    root, _built, guesses = project
    sql = "\n".join(p.read_text() for p in sorted((root / "sql" / "schema").glob("*.sql")))
    types = _types(sql)
    # Foreign keys whose first 10,000 values in index order are 0/1 stay integers.
    assert types["items.owner_id"] == "BIGINT NOT NULL" and types["items.kind_id"] == "BIGINT"
    # Counters holding only 0/1 stay integers; flags named or checked become booleans.
    assert types["standings.wins"] == "BIGINT NOT NULL DEFAULT 0" and types[
        'standings."Quantity"'
    ].startswith("BIGINT")
    assert types["standings.is_active"] == "BOOLEAN NOT NULL DEFAULT true"
    assert types["standings.reviewed"] == "BOOLEAN NOT NULL DEFAULT false"
    assert "    CHECK (reviewed" not in sql  # the boolean type holds it
    # Defaults, CHECKs and a partial predicate on a flag, translated.
    assert types["signups.email_verified"] == "BOOLEAN NOT NULL DEFAULT false"
    assert types["signups.is_admin"] == "BOOLEAN DEFAULT false"
    assert types["signups.has_paid"] == "BOOLEAN DEFAULT true"
    assert types["signups.created"] == "TIMESTAMPTZ DEFAULT now()"
    assert types["signups.joined_on"] == "TIMESTAMPTZ DEFAULT now()"
    assert "CHECK (status IN ('new', 'done'))" in sql
    assert "CONSTRAINT email_has_at CHECK (" in sql
    assert "ON signups (email) WHERE email_verified = FALSE;" in sql
    assert sql.count("signups_email") == 1 and "UNIQUE (email),\n    CONSTRAINT" not in sql
    # Epoch numbers in time-named columns, decimal text with a fraction; zip codes stay text.
    assert types["readings.created_at"] == "TIMESTAMPTZ NOT NULL"
    assert types["readings.sampled_ts"] == "TIMESTAMPTZ"
    assert types["readings.price"] == "NUMERIC" and types["readings.zip"] == "TEXT"
    assert types["readings.count_seen"] == "BIGINT"  # epoch-sized, but not named as a time
    # A foreign-key cycle: every key added after both tables exist.
    assert "ALTER TABLE members ADD CONSTRAINT members_team_id_fkey" in sql
    assert "ALTER TABLE teams ADD CONSTRAINT teams_owner_id_fkey" in sql
    # Every narrowing the declared type does not state is listed.
    for expected in (
        "standings.is_active: integer named as a flag",
        "standings.reviewed: integer CHECK (x IN (0, 1))",
        "readings.created_at: named as a time, every value epoch seconds",
        "readings.sampled_ts: named as a time, every value epoch milliseconds",
        "readings.price: text holding only decimal numbers",
        "documents.body: text holding only JSON",
        "Track Plays.PlayedAt: text holding only timestamps",
        "signups: index signups_unverified: partial index predicate rewritten",
    ):
        assert any(g.startswith(expected) for g in guesses), expected
    assert not any("BOOLEAN" in line for line in sql.splitlines() if "owner_id" in line)


def test_quoted_names_generate_importable_code(
    project: tuple[Path, dict[str, Path], list[str]], tmp_path: Path
) -> None:
    root, _built, _guesses = project
    out = _run(
        root,
        "-c",
        "import corpus_db.migrations as m; print(m.MIGRATIONS[2].down.postgres[0])",
    )
    assert out.strip() == 'DROP TABLE "Track Plays", "InvoiceLine"'
    _run(root, "-m", "codegen", "check", "--root", str(root))


@pytest.mark.postgres
async def test_migrated_up_on_both_backends_and_every_row_copied(
    project: tuple[Path, dict[str, Path], list[str]], postgres_dsn: str, tmp_path: Path
) -> None:
    root, built, _guesses = project
    data = tmp_path / "data"
    _run(root, "-m", "corpus_db", "migrate", "up", env={"ARAGORA_DATA_DIR": str(data)})
    files = list(data.glob("*.db"))
    assert len(files) == 1
    db = sqlite3.connect(files[0])
    sqlite_tables = {
        r[0]
        for r in db.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")
        if not r[0].startswith(("sqlite_", "schema_version"))
    }
    db.close()
    expected = {t for path in built.values() for t in corpus.row_counts(path)}
    assert sqlite_tables == expected
    checksums: dict[str, str | None] = {}
    for name, path in built.items():
        report = copy_into_sqlite(path, files[0], _expected(root), verify=True)
        assert report.total_errors == 0, (name, report.render())
        assert report.verified, (name, report.render())
        assert {t: r.migrated for t, r in report.tables.items()} == corpus.row_counts(path)
        for table, table_report in report.tables.items():
            checksums[table] = table_report.verify_detail
    with fresh_database(postgres_dsn) as dsn:
        _run(root, "-m", "corpus_db", "--database-url", dsn, "migrate", "up")
        conn = await asyncpg.connect(dsn)
        try:
            tables = {
                r[0]
                for r in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )
            }
            assert tables - {"schema_version"} == expected
            for name, path in built.items():
                counts = corpus.row_counts(path)
                report = await migrate_data(path, dsn, verify=True)
                assert report.total_errors == 0, (name, report.render())
                assert report.verified, name
                assert {t: r.migrated for t, r in report.tables.items()} == counts, name
                for table, table_report in report.tables.items():
                    # The same canonical checksum on both targets: the same values. A
                    # table the columnar path verified by reading it back has no checksum
                    # in its detail: it is computed here, over the stored rows.
                    detail = table_report.verify_detail or ""
                    sums = _sums(detail) or [await _checksum(conn, table)]
                    assert sums[-1:] == _sums(checksums[table] or "")[-1:], (table, detail)
                if name == "json_documents":
                    rules = report.tables["documents"].conversions
                    assert rules["body"] == {
                        RULES["json_duplicate_keys"]: 1,
                        RULES["json_respelled"]: 2,
                    }
            assert await conn.fetchval("SELECT body FROM documents WHERE id = 1") == '{"a": 2}'
        finally:
            await conn.close()


def test_existing_project_tables_are_mapped_not_recreated(tmp_path: Path) -> None:
    schema = tmp_path / "schema"
    first = corpus.build(tmp_path, "index_order")
    assert import_sqlite(first, schema).tables == ["kinds", "owners", "items"]
    again = tmp_path / "again.db"
    db = sqlite3.connect(again)
    db.executescript(
        """
        CREATE TABLE items (id INTEGER PRIMARY KEY, owner_id INTEGER, title TEXT,
                            colour TEXT DEFAULT 'red');
        CREATE TABLE notes (id INTEGER PRIMARY KEY, item_id INTEGER REFERENCES items (id));
        CREATE TABLE schema_version (version INTEGER);
        CREATE TABLE _schema_versions (module TEXT, version INTEGER);
        """
    )
    db.close()
    result = import_sqlite(again, schema)
    assert result.tables == ["notes"] and result.mapped == ["items"]
    assert "CREATE TABLE items" not in result.sql
    assert "ALTER TABLE items ADD COLUMN colour TEXT DEFAULT 'red';" in result.sql
    assert "ALTER TABLE notes ADD CONSTRAINT notes_item_id_fkey" in result.sql
    assert "schema_version" not in result.sql.split("-- migrate:up")[1]
    guesses = "\n".join(result.guesses)
    assert "items: the project already has this table" in guesses
    assert "schema_version: a migration runner's bookkeeping table" in guesses
    assert "_schema_versions: a migration runner's bookkeeping table" in guesses
    # Imported twice, nothing is left to add: no migration is written.
    again_result = import_sqlite(first, schema)
    assert again_result.path is None and again_result.tables == []
