"""Statements a migration may hold beyond tables and indexes: privileges pass through
(PostgreSQL's alone), functions, triggers and DO blocks are refused by name and reason,
and sqlglot's own fallback warnings never print ahead of the problems."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from codegen.analysis.schema import analyse_schema
from codegen.errors import CodegenError
from codegen.pipeline import generate


def _problems(sql: str) -> str:
    with pytest.raises(CodegenError) as caught:
        analyse_schema({"0001_init.sql": "-- migrate:up\n" + sql})
    return str(caught.value)


def test_grant_and_revoke_run_on_postgresql_only() -> None:
    _catalog, migrations = analyse_schema(
        {
            "0001_init.sql": "-- migrate:up\nCREATE TABLE t (id BIGINT PRIMARY KEY);\n"
            "GRANT SELECT ON t TO public;\nREVOKE SELECT ON t FROM public;\n"
        }
    )
    up = migrations[0].up
    assert [s.split()[0] for s in up.postgres] == ["CREATE", "GRANT", "REVOKE"]
    assert [s.split()[0] for s in up.sqlite] == ["CREATE"]


def test_functions_triggers_and_blocks_are_refused_by_name() -> None:
    text = _problems(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, n INT);\n"
        "CREATE FUNCTION bump() RETURNS trigger AS $$ BEGIN RETURN NEW; END $$ "
        "LANGUAGE plpgsql;\n"
        "CREATE TRIGGER t_bump BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION bump();\n"
        "DO $$ BEGIN PERFORM 1; END $$;\n"
    )
    assert "0001_init.sql:3:1: cannot translate CREATE FUNCTION bump to sqlite: functions" in text
    assert "0001_init.sql:4:1: cannot translate CREATE TRIGGER to sqlite: PL/pgSQL" in text
    assert "0001_init.sql:5:1: cannot translate DO" in text
    assert "COMMAND" not in text


def test_sqlglot_fallback_warnings_are_not_printed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "sql" / "schema").mkdir(parents=True)
    (tmp_path / "sql" / "queries").mkdir(parents=True)
    (tmp_path / "sqlc.yaml").write_text(CONFIG)
    (tmp_path / "sql" / "schema" / "0001_init.sql").write_text(
        "-- migrate:up\nCREATE TABLE t (id BIGINT PRIMARY KEY);\n"
        "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql;\n"
    )
    (tmp_path / "sql" / "queries" / "q.sql").write_text("-- name: One :one\nSELECT 1 AS one;\n")
    logging.getLogger("sqlglot").setLevel(logging.NOTSET)
    with caplog.at_level(logging.WARNING), pytest.raises(CodegenError) as caught:
        generate(tmp_path)
    assert "CREATE FUNCTION f" in str(caught.value)
    assert "Falling back" not in caplog.text


CONFIG = """version: "2"
sql:
  - engine: "postgresql"
    schema: "sql/schema"
    queries: "sql/queries"
    gen:
      json:
        out: "build/sqlc"
        filename: "request.json"
"""


def test_sqlc_and_schema_problems_are_reported_in_one_run(tmp_path: Path) -> None:
    (tmp_path / "sql" / "schema").mkdir(parents=True)
    (tmp_path / "sql" / "queries").mkdir(parents=True)
    (tmp_path / "sqlc.yaml").write_text(CONFIG)
    (tmp_path / "sql" / "schema" / "0001_init.sql").write_text(
        "-- migrate:up\nCREATE TABLE t (id BIGINT PRIMARY KEY, seq BIGSERIAL);\n"
    )
    (tmp_path / "sql" / "queries" / "q.sql").write_text(
        "-- name: Bad :one\nSELECT nothere FROM t;\n"
    )
    with pytest.raises(CodegenError) as caught:
        generate(tmp_path)
    text = str(caught.value)
    assert 'sql/queries/q.sql:2:8: column "nothere" does not exist' in text  # sqlc's
    assert "sql/schema/0001_init.sql:2:40: cannot translate identity column seq" in text


def test_append_only_marks_write_triggers_and_keep_them_through_a_rebuild() -> None:
    from codegen.analysis.schema import analyse_schema

    files = {
        "0001_log.sql": """-- migrate:up
CREATE TABLE log (id BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ NOT NULL DEFAULT now(), x TEXT);
-- aragora:append-only log (at)
-- migrate:down
DROP TABLE log;
""",
        "0002_rebuild.sql": """-- migrate:up
ALTER TABLE log DROP COLUMN x;
-- migrate:down
ALTER TABLE log ADD COLUMN x TEXT;
""",
    }
    catalog, migrations = analyse_schema(files)
    table = catalog.table("log")
    assert table is not None and table.append_only == "at"
    first, rebuild = migrations
    assert any("EXECUTE FUNCTION aragora_append_only('at')" in s for s in first.up.postgres)
    assert sum("CREATE TRIGGER" in s for s in first.up.sqlite) == 2
    # The SQLite rebuild drops the table's triggers; they are written again after it.
    assert any("DROP TABLE" in s for s in rebuild.up.sqlite)
    assert sum("CREATE TRIGGER" in s for s in rebuild.up.sqlite) == 2


@pytest.mark.parametrize(
    ("statement", "says"),
    [
        ("-- aragora:append-only nowhere (at)", "no such table"),
        ("-- aragora:append-only log (x)", "name the time column"),
        ("-- aragora:append-only log", "name the time column"),
        ("-- aragora:not-append-only log", "not append-only"),
    ],
)
def test_append_only_marks_that_cannot_apply_are_placed(statement: str, says: str) -> None:
    from codegen.analysis.schema import analyse_schema
    from codegen.errors import CodegenError

    text = (
        "-- migrate:up\nCREATE TABLE log (id BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ, x TEXT);\n"
        f"{statement}\n-- migrate:down\nDROP TABLE log;\n"
    )
    with pytest.raises(CodegenError) as caught:
        analyse_schema({"0001_log.sql": text})
    problem = caught.value.problems[0]
    assert (problem.file, problem.line, problem.col) == ("0001_log.sql", 3, 1)
    assert says in problem.message


@pytest.mark.parametrize(
    "change",
    [
        "ALTER TABLE log DROP COLUMN at",
        "ALTER TABLE log RENAME TO logs",
        "ALTER TABLE log RENAME COLUMN at TO happened",
        "ALTER TABLE log ALTER COLUMN at TYPE text",
    ],
)
def test_changes_that_would_leave_the_triggers_stale_are_refused(change: str) -> None:
    from codegen.analysis.schema import analyse_schema
    from codegen.errors import CodegenError

    files = {
        "0001_log.sql": "-- migrate:up\nCREATE TABLE log (id BIGSERIAL PRIMARY KEY, "
        "at TIMESTAMPTZ NOT NULL, x TEXT);\n-- aragora:append-only log (at)\n"
        "-- migrate:down\nDROP TABLE log;\n",
        "0002_change.sql": f"-- migrate:up\n{change};\n-- migrate:down\n",
    }
    with pytest.raises(CodegenError) as caught:
        analyse_schema(files)
    assert "is append-only (by at)" in caught.value.problems[0].message
