"""migrate-data into the project's own SQLite database: typed as the generated code reads
it, rejects with reasons, exactly once through a crash and a SIGKILL, verified."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aragora_db import MIGRATIONS, connect_sync
from aragora_db.models import UserRole
from aragora_db.schema import EXPECTED
from aragora_repos import Config
from aragora_repos.tools.migrate_data.sqlite_target import (
    PROGRESS_TABLE,
    _SqliteCopier,
    copy_into_sqlite,
)
from tests.migrate_data.conftest import make_sqlite

ROOT = Path(__file__).parent.parent.parent
SOURCE = """
CREATE TABLE users (
    id TEXT PRIMARY KEY, email TEXT UNIQUE NOT NULL, password_hash TEXT NOT NULL,
    password_salt TEXT NOT NULL, name TEXT DEFAULT '', org_id TEXT, role TEXT DEFAULT 'member',
    created_at TEXT DEFAULT CURRENT_TIMESTAMP, updated_at TEXT DEFAULT CURRENT_TIMESTAMP,
    is_active INTEGER DEFAULT 1, email_verified INTEGER DEFAULT 0, preferences TEXT DEFAULT '{}',
    failed_login_count INTEGER DEFAULT 0
);
CREATE TABLE organizations (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, slug TEXT UNIQUE NOT NULL,
    owner_id TEXT REFERENCES users (id), settings TEXT DEFAULT '{}'
);
"""


def _users(n: int) -> list[tuple[object, ...]]:
    return [
        (
            f"u{i}",
            f"u{i}@x",
            "h",
            "s",
            f"User {i}",
            None,
            "admin" if i % 2 else "member",
            f"2024-01-{i % 28 + 1:02d} 10:00:00",
            "2024-02-01T08:00:00+00:00",
            i % 2,
            1,
            json.dumps({"i": i, "theme": "dark"}),
            i % 3,
        )
        for i in range(n)
    ]


@pytest.fixture
def target(tmp_path: Path) -> Path:
    config = Config(data_dir=tmp_path / "data")
    with connect_sync(config) as db:
        assert db.migrate() == [m.version for m in MIGRATIONS]
    return config.sqlite_file


def test_rows_arrive_typed_as_the_generated_code_reads_them(tmp_path: Path, target: Path) -> None:
    source = make_sqlite(
        tmp_path / "users.db",
        SOURCE,
        {"users": _users(30), "organizations": [("o1", "Org", "org", "u1", '{"b": 1, "a": 2}')]},
    )
    report = copy_into_sqlite(source, target, EXPECTED, verify=True, batch_size=7)
    assert report.total_errors == 0 and report.total_migrated == 31
    assert report.verified, report.render()
    assert report.tables["users"].batches == 5
    rules = report.tables["users"].conversions
    assert rules["is_active"] == {"integer 0/1 as boolean": 30}
    assert rules["created_at"] == {"timestamp text without zone taken as UTC": 30}
    with connect_sync(Config(sqlite_path=target)) as db:
        user = db.users.get_user_by_email(email="u3@x")
        assert user is not None
        assert user.role is UserRole.ADMIN and user.is_active is True
        assert user.email_verified is True and user.failed_login_count == 0
        assert user.created_at == datetime(2024, 1, 4, 10, 0, tzinfo=UTC)
        assert user.preferences == {"i": 3, "theme": "dark"}
    raw = sqlite3.connect(target)
    # Stored as the generated code stores it: fixed-width UTC text, JSON as jsonb keeps it.
    assert raw.execute("SELECT created_at FROM users WHERE id = 'u3'").fetchone() == (
        "2024-01-04 10:00:00.000000+00:00",
    )
    assert raw.execute("SELECT settings FROM organizations").fetchone() == ('{"a": 2, "b": 1}',)
    raw.close()
    # A second run copies nothing again.
    again = copy_into_sqlite(source, target, EXPECTED, verify=True)
    assert again.tables["users"].already_done == 30 and again.total_migrated == 31
    assert again.verified


def test_refused_rows_have_reasons_and_the_rest_arrive(tmp_path: Path, target: Path) -> None:
    users = _users(6)
    users[1] = (*users[1][:6], "emperor", *users[1][7:])  # no such role
    users[2] = (*users[2][:12], "many")  # text in an integer column
    orgs = [
        ("o1", "Org", "org", "u0", "{}"),
        ("o2", "Orphan", "orphan", "nobody", "{}"),  # owner not there
        ("o3", "Dup", "taken", None, "{}"),  # slug taken in the target
    ]
    source = make_sqlite(tmp_path / "bad.db", SOURCE, {"users": users, "organizations": orgs})
    db = sqlite3.connect(target)
    db.execute("INSERT INTO organizations (id, name, slug) VALUES ('ox', 'Here', 'taken')")
    db.commit()
    db.close()
    report = copy_into_sqlite(source, target, EXPECTED, verify=True)
    assert report.tables["users"].migrated == 4 and report.tables["users"].errors == 2
    assert report.tables["organizations"].migrated == 1
    assert report.tables["organizations"].errors == 2
    assert report.tables["users"].verified, report.render()
    assert report.tables["organizations"].verified is False  # it holds a row of its own
    assert report.reject_file is not None
    lines = [json.loads(line) for line in Path(report.reject_file).read_text().splitlines()]
    reasons = {(r["table"], r["key"]): r["reason"] for r in lines}
    assert "user_role" in reasons[("users", "u1")] or "emperor" in reasons[("users", "u1")]
    assert "integer" in reasons[("users", "u2")]
    assert reasons[("organizations", "o2")].startswith("23503")
    assert reasons[("organizations", "o3")].startswith("23505")
    # Rerun: the rejects stay listed, nothing is copied twice.
    again = copy_into_sqlite(source, target, EXPECTED)
    assert again.total_migrated == 5 and again.total_errors == 4
    assert len(Path(again.reject_file or "").read_text().splitlines()) == 4


def test_a_crash_between_batches_resumes_exactly_once(
    tmp_path: Path, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_sqlite(tmp_path / "many.db", SOURCE, {"users": _users(50)})
    calls = {"n": 0}
    real = _SqliteCopier._progress

    def crash_on_third(self: _SqliteCopier, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("crash")
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_SqliteCopier, "_progress", crash_on_third)
    with pytest.raises(RuntimeError):
        copy_into_sqlite(source, target, EXPECTED, batch_size=10)
    monkeypatch.setattr(_SqliteCopier, "_progress", real)
    db = sqlite3.connect(target)
    assert db.execute("SELECT count(*) FROM users").fetchone() == (20,)  # two batches committed
    db.close()
    report = copy_into_sqlite(source, target, EXPECTED, batch_size=10, verify=True)
    assert report.tables["users"].already_done == 20
    assert report.tables["users"].migrated == 50 and report.verified
    # A row an earlier run copied, changed since: the verification of a rerun sees it.
    db = sqlite3.connect(target)
    db.execute("UPDATE users SET name = 'changed' WHERE id = 'u3'")
    db.commit()
    db.close()
    again = copy_into_sqlite(source, target, EXPECTED, batch_size=10, verify=True)
    assert again.tables["users"].already_done == 50 and again.verified is False


KILLER = """
import os, signal, sys
from pathlib import Path
from aragora_db.schema import EXPECTED
from aragora_repos.tools.migrate_data import sqlite_target

real = sqlite_target._SqliteCopier._progress
seen = {"n": 0}

def progress(self, *args, **kwargs):
    real(self, *args, **kwargs)
    seen["n"] += 1
    if seen["n"] == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)  # inside the batch's transaction, before COMMIT

sqlite_target._SqliteCopier._progress = progress
sqlite_target.copy_into_sqlite(Path(sys.argv[1]), Path(sys.argv[2]), EXPECTED, batch_size=10)
"""


@pytest.mark.parametrize("kill_at", [1, 4])
def test_sigkill_inside_a_batch_loses_and_repeats_nothing(
    tmp_path: Path, target: Path, kill_at: int
) -> None:
    source = make_sqlite(tmp_path / "kill.db", SOURCE, {"users": _users(50)})
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, str(source), str(target), str(kill_at)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    db = sqlite3.connect(target)
    committed = db.execute("SELECT count(*) FROM users").fetchone()[0]
    progress = db.execute(f"SELECT rows_copied FROM {PROGRESS_TABLE}").fetchone()
    db.close()
    assert committed == (kill_at - 1) * 10
    assert progress == (None if kill_at == 1 else ((kill_at - 1) * 10,))
    report = copy_into_sqlite(source, target, EXPECTED, batch_size=10, verify=True)
    assert report.tables["users"].migrated == 50 and report.verified, report.render()


def test_a_row_already_there_with_other_values_fails_verification(
    tmp_path: Path, target: Path
) -> None:
    source = make_sqlite(tmp_path / "users.db", SOURCE, {"users": _users(3)})
    with connect_sync(Config(sqlite_path=target)) as db:
        db.users.create_user(
            id="u1",
            email="u1@x",
            password_hash="other",
            password_salt="s",
            name="Somebody else",
            org_id=None,
            role=UserRole.MEMBER,
        )
    report = copy_into_sqlite(source, target, EXPECTED, verify=True)
    assert report.tables["users"].migrated == 2 and report.tables["users"].skipped == 1
    assert report.verified is False


def test_dry_run_writes_nothing_but_the_reject_file(tmp_path: Path, target: Path) -> None:
    users = _users(3)
    users[0] = (*users[0][:12], "lots")
    source = make_sqlite(tmp_path / "dry.db", SOURCE, {"users": users})
    report = copy_into_sqlite(source, target, EXPECTED, dry_run=True)
    assert report.tables["users"].errors == 1 and report.reject_file is not None
    db = sqlite3.connect(target)
    assert db.execute("SELECT count(*) FROM users").fetchone() == (0,)
    assert not db.execute(
        "SELECT 1 FROM sqlite_schema WHERE name = ?", (PROGRESS_TABLE,)
    ).fetchall()
    db.close()


def test_the_cli_copies_into_the_configured_sqlite_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from aragora_db.__main__ import main as cli_main

    users = _users(4)
    users[1] = (*users[1][:12], "many")  # rejected: text in an integer column
    source = make_sqlite(tmp_path / "cli.db", SOURCE, {"users": users})
    monkeypatch.setenv("ARAGORA_DATA_DIR", str(tmp_path / "fresh"))
    code = cli_main(
        ["migrate-data", "--sqlite-path", str(source), "--target", "sqlite", "--verify", "--json"]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 3  # rows went to the reject file, as into PostgreSQL
    assert report["tables"]["users"]["migrated"] == 3
    assert report["tables"]["users"]["errors"] == 1
    assert report["verified"] is True
    db = sqlite3.connect(tmp_path / "fresh" / "aragora.db")
    assert db.execute("SELECT count(*) FROM users").fetchone() == (3,)
    db.close()
