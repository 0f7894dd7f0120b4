"""Legacy and consolidated SQLite layouts, and consolidation of the legacy files."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from aragora_db.__main__ import main as cli_main
from aragora_repos import ConfigError
from aragora_repos.errors import MigrationError
from aragora_repos.tools.layout import (
    DatabaseMode,
    DatabaseType,
    consolidate,
    get_db_mode,
    get_db_path,
)
from tests.migrate_data.conftest import make_sqlite


def test_paths_by_mode(tmp_path: Path) -> None:
    assert get_db_path(DatabaseType.ELO, tmp_path, DatabaseMode.LEGACY) == tmp_path / "agent_elo.db"
    assert get_db_path(DatabaseType.ELO, tmp_path, DatabaseMode.CONSOLIDATED) == (
        tmp_path / "analytics.db"
    )
    assert get_db_path(DatabaseType.CONTINUUM_MEMORY, tmp_path, DatabaseMode.LEGACY).name == (
        "continuum.db"
    )
    assert {t.consolidated for t in DatabaseType} == {
        "core.db",
        "memory.db",
        "analytics.db",
        "agents.db",
    }
    assert get_db_mode({}) is DatabaseMode.CONSOLIDATED
    assert get_db_mode({"ARAGORA_DB_MODE": "Legacy"}) is DatabaseMode.LEGACY
    with pytest.raises(ConfigError, match="invalid ARAGORA_DB_MODE: expected legacy or"):
        get_db_mode({"ARAGORA_DB_MODE": "sharded"})


def test_path_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ARAGORA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ARAGORA_DB_MODE", "legacy")
    assert get_db_path(DatabaseType.USERS) == tmp_path / "users.db"


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    src = tmp_path / "nomic"
    src.mkdir()
    make_sqlite(
        src / "agent_elo.db",
        "CREATE TABLE ratings (agent TEXT PRIMARY KEY, elo REAL);"
        "CREATE INDEX ratings_elo ON ratings (elo);"
        "CREATE VIEW top AS SELECT * FROM ratings WHERE elo > 1500;",
        {"ratings": [("claude", 1600.5), ("gemini", 1480.0)]},
    )
    make_sqlite(
        src / "continuum.db",
        "CREATE TABLE memories (id TEXT PRIMARY KEY, tier TEXT, content TEXT);"
        "CREATE INDEX memories_tier ON memories (tier);",
        {"memories": [("m1", "fast", "x"), ("m2", "slow", "ü")]},
    )
    make_sqlite(
        src / "agent_memories.db",
        "CREATE TABLE memories (id INTEGER PRIMARY KEY, agent_name TEXT, content BLOB);",
        {"memories": [(1, "claude", b"\x00\x01")]},
    )
    make_sqlite(
        src / "debates.db",
        "CREATE TABLE debates (id TEXT PRIMARY KEY, task TEXT, agents TEXT);",
        {"debates": [(f"d{i}", f"task {i}", "[]") for i in range(500)]},
    )
    (src / "unrelated.db").write_bytes(b"")
    return src


def _count(path: Path, table: str) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
    finally:
        db.close()


def test_dry_run_writes_nothing(legacy: Path) -> None:
    report = consolidate(legacy, action="dry-run")
    assert [
        (m.source_file, m.table, m.target_file, m.target_table, m.source_rows) for m in report.moves
    ] == [
        ("agent_elo.db", "ratings", "analytics.db", "ratings", 2),
        ("agent_memories.db", "memories", "memory.db", "memories", 1),
        ("continuum.db", "memories", "memory.db", "continuum_memory", 2),
        ("debates.db", "debates", "core.db", "debates", 500),
    ]
    assert report.not_copied == ["agent_elo.db: view top"]
    assert not (legacy / "core.db").exists() and not (legacy / "backup").exists()


def test_migrate_backup_rerun_and_verify(legacy: Path, tmp_path: Path) -> None:
    target = tmp_path / "consolidated"
    report = consolidate(legacy, target, action="migrate")
    assert report.backup is not None
    backup = Path(report.backup)
    assert backup.parent == legacy / "backup" and len(backup.name) == len("20261128_101010")
    assert sorted(p.name for p in backup.iterdir()) == [
        "agent_elo.db",
        "agent_memories.db",
        "continuum.db",
        "debates.db",
    ]
    assert _count(backup / "debates.db", "debates") == 500
    assert [m.written for m in report.moves] == [2, 1, 2, 500]
    assert _count(target / "memory.db", "continuum_memory") == 2
    assert _count(target / "memory.db", "memories") == 1
    db = sqlite3.connect(target / "memory.db")
    indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_schema WHERE type = 'index'")}
    db.close()
    assert "continuum_memory_memories_tier" in indexes

    again = consolidate(legacy, target, action="migrate", take_backup=False)
    assert [m.written for m in again.moves] == [0, 0, 0, 0]
    assert [m.skipped for m in again.moves] == [2, 1, 2, 500]

    verified = consolidate(legacy, target, action="verify")
    assert verified.ok and [m.missing for m in verified.moves] == [0, 0, 0, 0]

    db = sqlite3.connect(target / "core.db")
    db.execute("UPDATE debates SET task = 'changed' WHERE id = 'd7'")
    db.commit()
    db.close()
    tampered = consolidate(legacy, target, action="verify")
    assert not tampered.ok
    assert [m.missing for m in tampered.moves] == [0, 0, 0, 1]
    assert "debates.db:debates -> core.db:debates  500 rows, MISSING 1" in tampered.render()


def test_conflicting_tables_stop_before_writing(legacy: Path) -> None:
    make_sqlite(
        legacy / "agent_calibration.db",
        "CREATE TABLE ratings (agent TEXT, other INTEGER);",
        {"ratings": [("x", 1)]},
    )
    with pytest.raises(MigrationError, match=r"agent_calibration\.db and agent_elo\.db both hold"):
        consolidate(legacy, action="migrate")
    assert not (legacy / "analytics.db").exists() and not (legacy / "backup").exists()


def test_cli(legacy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["consolidate", "--migrate", "--source", str(legacy), "--no-backup"]) == 0
    assert cli_main(["consolidate", "--verify", "--source", str(legacy), "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{") :])
    assert report["ok"] is True and report["action"] == "verify"
    assert not (legacy / "backup").exists()
