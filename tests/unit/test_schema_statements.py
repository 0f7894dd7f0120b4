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
