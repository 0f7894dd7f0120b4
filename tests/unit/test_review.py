"""schema-diff: the Markdown review of a schema change, from a real git history."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from codegen.review import main

ROOT = Path(__file__).parent.parent.parent

CHANGE = """-- migrate:up
ALTER TABLE users ADD COLUMN lockout_level INTEGER NOT NULL;
ALTER TABLE users ADD COLUMN nickname TEXT NOT NULL DEFAULT '';
ALTER TABLE users DROP COLUMN last_debate_at;
ALTER TABLE users ALTER COLUMN failed_login_count TYPE SMALLINT;
ALTER TABLE users RENAME COLUMN lockout_reason TO lock_reason;
ALTER TABLE organizations ADD CONSTRAINT slug_lower CHECK (slug = lower(slug));
CREATE INDEX idx_users_email_lower ON users (lower(email));
CREATE INDEX CONCURRENTLY idx_orgs_tier ON organizations (tier);
CREATE TABLE hook_targets (id BIGSERIAL PRIMARY KEY, url TEXT NOT NULL);
CREATE INDEX idx_hook_targets_url ON hook_targets (url);
DROP TABLE usage_events;
-- migrate:down
DROP TABLE hook_targets;
"""


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def test_report_lists_changes_and_warnings(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    shutil.copy(ROOT / "sqlc.yaml", project)
    shutil.copytree(ROOT / "sql", project / "sql")
    _git(project, "init", "-q")
    _git(project, "add", ".")
    _git(project, "commit", "-qm", "base")
    (project / "sql/schema/0100_review.sql").write_text(CHANGE)
    out = tmp_path / "report.md"
    assert main(["--base", "HEAD", "--root", str(project), "--output", str(out)]) == 0
    report = out.read_text()
    expected_rows = [
        "New migrations: `0100_review.sql`",
        "| column added | `lockout_level int NOT NULL` |",
        "| column removed | `last_debate_at timestamptz` |",
        "| type changed | `failed_login_count`: `int` → `smallint` |",
        "| column renamed | `lockout_reason` → `lock_reason` |",
        "| check added | `slug = LOWER(slug)` |",
        "| table removed |  |",
        "| table added | `id bigserial`, `url text NOT NULL` |",
    ]
    warnings = [
        "**adding NOT NULL without a default** `users.lockout_level`",
        "**dropping column** `users.last_debate_at`",
        "**narrowing a type** `users.failed_login_count`",
        "**renaming** column users.lockout_reason -> lock_reason",
        "**adding a CHECK** `organizations`",
        "**creating an index without CONCURRENTLY** `idx_users_email_lower`",
        "**dropping table** `usage_events`",
    ]
    for line in expected_rows + warnings:
        assert line in report, line
    assert "nickname" in report and "users.nickname" not in report  # has a default: no warning
    assert "idx_orgs_tier`" not in report.split("### Warnings")[1]  # built CONCURRENTLY
    assert "idx_hook_targets_url`" not in report.split("### Warnings")[1]  # new table: no lock
    assert "lock_reason text` |" not in report  # a rename is not an add plus a drop
    assert report.count("⚠️") == len(warnings)


def test_no_change(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    shutil.copy(ROOT / "sqlc.yaml", project)
    shutil.copytree(ROOT / "sql", project / "sql")
    _git(project, "init", "-q")
    _git(project, "add", ".")
    _git(project, "commit", "-qm", "base")
    out = tmp_path / "report.md"
    assert main(["--base", "HEAD", "--root", str(project), "--output", str(out)]) == 0
    assert "No schema changes." in out.read_text()
