"""codegen.branches: a branch that adds a migration number its base already gives to
another file, or one below the base's newest, is stopped before the merge."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from codegen.branches import conflicts, main

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


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def add(root: Path, name: str) -> None:
    (root / "sql" / "schema" / name).write_text("-- migrate:up\nSELECT 1;\n-- migrate:down\n")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "sql" / "schema").mkdir(parents=True)
    (root / "sql" / "queries").mkdir()
    (root / "sqlc.yaml").write_text(CONFIG)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "t")
    add(root, "0001_init.sql")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "init")
    git(root, "checkout", "-q", "-b", "feature")
    git(root, "checkout", "-q", "main")
    add(root, "0002_on_main.sql")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "main adds 0002")
    git(root, "checkout", "-q", "feature")
    return root


def test_a_number_the_base_took_is_refused(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add(repo, "0002_on_feature.sql")
    assert main(["--base", "main", "--root", str(repo)]) == 1
    err = capsys.readouterr().err
    assert "0002_on_feature.sql: the base already has 0002_on_main.sql as 0002" in err
    assert "renumber this branch's migrations after 0002" in err


def test_a_number_after_the_base_passes(repo: Path) -> None:
    add(repo, "0003_on_feature.sql")
    assert main(["--base", "main", "--root", str(repo)]) == 0


def test_a_number_below_the_bases_newest_is_refused() -> None:
    base = {"0001_a.sql": 1, "0002_b.sql": 2, "0004_d.sql": 4}
    here = {"0001_a.sql": 1, "0002_b.sql": 2, "0003_c.sql": 3}
    assert conflicts(here, base) == [
        "0003_c.sql: the base has migrations up to 0004, after this one; renumber it after 0004"
    ]
