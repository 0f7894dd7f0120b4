"""A project outside this repository configures the generator in its own sqlc.yaml (two
sql entries, its own package names, its own output directory), generates both packages
and runs them on both backends with nothing of this repository's generated code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pg_server import fresh_database

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
TAGS_SCHEMA = """-- migrate:up
CREATE TABLE tags (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE);
-- migrate:down
DROP TABLE tags;
"""
TAGS_QUERIES = """-- name: AddTag :exec
INSERT INTO tags (name) VALUES ($1);

-- name: ListTags :many
SELECT id, name FROM tags ORDER BY name;
"""
CONFIG = """version: "2"
options:
  aragora:
    out: "src/db"
sql:
  - name: "notes_db"
    engine: "postgresql"
    schema: "notes/schema"
    queries: "notes/queries"
    gen:
      json:
        out: "build/notes"
        filename: "request.json"
  - name: "tags_db"
    engine: "postgresql"
    schema: "tags/schema"
    queries: "tags/queries"
    gen:
      json:
        out: "build/tags"
        filename: "request.json"
"""


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "elsewhere"
    golden = ROOT / "tests" / "golden" / "annotations" / "sql"
    shutil.copytree(golden / "schema", root / "notes" / "schema")
    shutil.copytree(golden / "queries", root / "notes" / "queries")
    (root / "tags" / "schema").mkdir(parents=True)
    (root / "tags" / "queries").mkdir(parents=True)
    (root / "tags" / "schema" / "0001_tags.sql").write_text(TAGS_SCHEMA)
    (root / "tags" / "queries" / "tags.sql").write_text(TAGS_QUERIES)
    (root / "sqlc.yaml").write_text(CONFIG)
    return root


def _run(cwd: Path, *args: str, path: Path | None = None) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in (path, ROOT) if p)}
    proc = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, check=False, cwd=cwd
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.postgres
def test_another_project_generates_and_runs_its_own_packages(
    tmp_path: Path, postgres_dsn: str
) -> None:
    root = _project(tmp_path)
    _run(root, "-m", "codegen", "generate", "--root", str(root))
    out = root / "src" / "db"
    assert sorted(p.name for p in out.iterdir()) == ["notes_db", "schema", "tags_db"]
    assert (out / "schema" / "tags_db" / "postgres.sql").read_text().count("CREATE TABLE") == 1
    assert "from notes_db.models import" in (out / "notes_db" / "notes.py").read_text()
    assert "aragora_db" not in "".join(p.read_text() for p in out.rglob("*.py"))
    _run(root, "-m", "codegen", "check", "--root", str(root))  # generated output is current
    script = str(HERE / "other_project.py")
    sqlite_out = _run(root, script, "sqlite", str(tmp_path / "data"), path=out)
    # Each package keeps its own schema_version: one database each, as on SQLite.
    with fresh_database(postgres_dsn) as notes, fresh_database(postgres_dsn) as tags:
        postgres_out = _run(root, script, notes, tags, path=out)
    assert sqlite_out == postgres_out
    assert json.loads(sqlite_out) == [1, ["x"], ["red"]]
    migrate = _run(root, "-m", "notes_db", "migrate", "--status", path=out)
    assert "0001_init" in migrate
