"""adopt: an existing Aragora data directory, in either layout (or both), into this
project's schema on SQLite and PostgreSQL. Every source row is accounted for: in the
target, the same as another file's row, or rejected with a reason; nothing left behind
goes unreported, and exit 0 means every row arrived."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from aragora_db import MIGRATIONS, connect, connect_sync
from aragora_db.__main__ import main as cli_main
from aragora_db.schema import EXPECTED
from aragora_repos import Config, Secret
from aragora_repos.tools.adopt import AdoptReport, adopt, find_sources
from aragora_repos.tools.slugs import slug_base, with_suffix
from tests.migrate_data import legacy
from tests.pg_server import fresh_database


@pytest.fixture
def pg(postgres_dsn: str) -> Iterator[str]:
    with fresh_database(postgres_dsn) as dsn:
        yield dsn


def _config(tmp_path: Path, target: str, dsn: str | None) -> Config:
    if target == "sqlite":
        return Config(data_dir=tmp_path / "target")
    assert dsn is not None
    return Config(backend="postgres", dsn=Secret(dsn), data_dir=tmp_path / "target")


def _accounts_for_every_row(report: AdoptReport, source: Path) -> None:
    total = sum(t.rows for t in report.tables)
    assert total == legacy.source_rows(source)
    assert report.accounted
    for t in report.tables:
        assert t.in_target + t.duplicates + t.rejected + t.left_behind == t.rows, t


async def _rows(config: Config, sql: str) -> list[tuple[object, ...]]:
    if config.backend == "postgres":
        assert config.dsn is not None
        conn = await asyncpg.connect(config.dsn.reveal())
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()
    db = sqlite3.connect(config.sqlite_file)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


@pytest.mark.parametrize("layout", ["legacy", "consolidated"])
@pytest.mark.parametrize("target", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_every_store_arrives_through_the_mapping_rules(
    tmp_path: Path, layout: str, target: str, request: pytest.FixtureRequest
) -> None:
    dsn = request.getfixturevalue("pg") if target == "postgres" else None
    build = legacy.legacy_layout if layout == "legacy" else legacy.consolidated_layout
    source = build(tmp_path / "nomic")
    config = _config(tmp_path, target, dsn)
    report = await adopt(source, config, MIGRATIONS, EXPECTED, target=target, verify=True)
    assert report.layout == layout
    _accounts_for_every_row(report, source)
    assert report.exit_code() == 0, report.render()
    assert report.verified is True
    assert report.rejected == 0 and not report.left_behind
    by_table = {t.table: t for t in report.tables}
    assert by_table["consensus"].rules["id"] == {
        "text key replaced by a new integer key (recorded in the key map)": 20
    }
    assert by_table["dissent"].rules["consensus_id"] == {
        "reference to a text key replaced by its new integer key": 20
    }
    assert by_table["debates"].rules["slug"] == {
        "slug derived from the task and day, made unique": 20
    }
    assert by_table["critiques"].rules["severity"] == {
        "NULL in a NOT NULL column given the column's default": 10
    }
    assert by_table["audit_log"].rules["resource_type"] == {
        "NULL given the project's stand-in value": 20
    }
    assert by_table["consensus"].rules["domain"] == {
        "NULL in a NOT NULL column given the column's default": 10
    }
    assert report.conversions["organizations"]["settings"] == {
        "JSON object with a repeated key: jsonb keeps the last value only": 1
    }

    # The key map is recorded, and every dissent points at its consensus's new key.
    assert report.key_map_file is not None
    keys = [json.loads(line) for line in Path(report.key_map_file).read_text().splitlines()]
    mapped = {k["source_key"]: k["key"] for k in keys if k["table"] == "consensus"}
    assert sorted(mapped.values()) == list(range(1, 21))
    pairs = await _rows(
        config,
        "SELECT d.id, c.topic FROM dissent d JOIN consensus c ON c.id = d.consensus_id",
    )
    assert len(pairs) == 20 and ("x3", "Topic 3") in pairs

    # Slugs: derived from the task and day, unique, and the runtime's counters agree.
    slugs = sorted(str(r[0]) for r in await _rows(config, "SELECT slug FROM debates"))
    base = slug_base("Design a rate limiter", date(2024, 1, 15))
    assert slugs.count(base) == 1 and with_suffix(base, 6) in slugs
    assert len(set(slugs)) == 20
    db = await connect(config)
    try:
        n = await db.debates.reserve_slug_suffix(base=base)
        assert n is not None and with_suffix(base, n) not in slugs  # the next debate's is free
        user = await db.users.get_user_by_email(email="u3@example.com")
        assert user is not None and user.is_active is True and user.email_verified is False
        assert user.created_at == datetime(2024, 1, 4, 10, 0, tzinfo=UTC)
        assert user.preferences == {"theme": "dark", "n": 3}
    finally:
        await db.close()
    unknown = await _rows(config, "SELECT count(*) FROM audit_log WHERE resource_type = 'unknown'")
    assert unknown == [(20,)]


def test_both_layouts_in_one_directory_are_counted_once(tmp_path: Path) -> None:
    source = legacy.legacy_layout(tmp_path / "nomic")
    legacy.consolidated_layout(source)  # consolidation left the legacy files in place
    assert find_sources(source).layout == "legacy+consolidated"
    config = Config(data_dir=tmp_path / "target")
    report = asyncio.run(adopt(source, config, MIGRATIONS, EXPECTED, verify=True))
    _accounts_for_every_row(report, source)
    assert report.exit_code() == 0, report.render()
    # Each row is in both layouts: one copy arrives, the other is a counted duplicate.
    in_target = sum(t.in_target for t in report.tables)
    duplicates = sum(t.duplicates for t in report.tables)
    assert in_target == duplicates == legacy.source_rows(source) // 2


def _cli(
    source: Path,
    data: Path,
    *extra: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, dict[str, object]]:
    monkeypatch.setenv("ARAGORA_DATA_DIR", str(data))
    code = cli_main(["adopt", "--source", str(source), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_rejects_and_left_behind_set_the_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = legacy.legacy_layout(tmp_path / "nomic")
    db = sqlite3.connect(source / "users.db")
    db.execute("UPDATE users SET role = 'emperor' WHERE id = 'u5'")
    db.execute("UPDATE usage_events SET count = 'lots' WHERE id = 3")
    db.commit()
    db.close()
    code, report = _cli(
        source, tmp_path / "data", "--verify", monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 3 and report["accounted"] is True
    rejects = [
        json.loads(line) for line in Path(str(report["reject_file"])).read_text().splitlines()
    ]
    where = {(r["file"], r["table"], r["key"]) for r in rejects}
    assert ("users.db", "users", "u5") in where and ("users.db", "usage_events", 3) in where
    assert all(r["reason"] for r in rejects)
    # A table the project has no place for is left behind, counted, and fails the run.
    db = sqlite3.connect(source / "agora_memory.db")
    db.executescript(
        "CREATE TABLE scratchpad (note TEXT); INSERT INTO scratchpad VALUES ('keep me');"
    )
    db.execute("ALTER TABLE debates ADD COLUMN mood TEXT")
    db.execute("UPDATE debates SET mood = 'calm' WHERE id = 'd1'")
    db.commit()
    db.close()
    code, report = _cli(source, tmp_path / "data2", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 1 and report["accounted"] is True
    listed: list[dict[str, Any]] = report["tables"]  # type: ignore[assignment]
    tables = {(t["file"], t["table"]): t for t in listed}
    assert tables[("agora_memory.db", "scratchpad")]["left_behind"] == 1
    assert tables[("agora_memory.db", "debates")]["left_behind_columns"] == {"mood": 1}


def test_a_rerun_copies_only_what_is_new(tmp_path: Path) -> None:
    source = legacy.legacy_layout(tmp_path / "nomic")
    config = Config(data_dir=tmp_path / "target")
    first = asyncio.run(adopt(source, config, MIGRATIONS, EXPECTED))
    assert first.exit_code() == 0
    again = asyncio.run(adopt(source, config, MIGRATIONS, EXPECTED, verify=True))
    assert again.exit_code() == 0 and again.verified
    # Nothing changed: the copy resumes, finds every table done, and copies nothing again.
    assert all(c["by_earlier_runs"] == c["copied"] for c in again.copied.values())
    db = sqlite3.connect(source / "users.db")
    db.execute(
        "INSERT INTO users (id, email, password_hash, password_salt, created_at, updated_at) "
        "VALUES ('new', 'new@example.com', 'h', 's', '2024-05-01 00:00:00', '2024-05-01 00:00:00')"
    )
    db.commit()
    db.close()
    third = asyncio.run(adopt(source, config, MIGRATIONS, EXPECTED, verify=True))
    assert third.exit_code() == 0, third.render()
    # The sources changed: staged again, every row tried again, only the new one copied.
    assert third.copied["users"] == {
        "copied": 1,
        "already_there": 20,
        "rejected": 0,
        "by_earlier_runs": 0,
    }
    with connect_sync(config) as db_:
        assert db_.users.get_user_by_email(email="new@example.com") is not None


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    source = legacy.legacy_layout(tmp_path / "nomic")
    config = Config(data_dir=tmp_path / "target")
    report = asyncio.run(adopt(source, config, MIGRATIONS, EXPECTED, dry_run=True))
    assert report.exit_code() == 0 and report.accounted
    assert not config.sqlite_file.exists()


@pytest.mark.postgres
def test_the_cli_adopts_into_postgresql(
    tmp_path: Path,
    pg: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = legacy.consolidated_layout(tmp_path / "nomic")
    monkeypatch.setenv("ARAGORA_DATA_DIR", str(tmp_path / "work"))
    code = cli_main(
        ["adopt", "--source", str(source), "--target", "postgres", "--database-url", pg, "--verify"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "verified: checksums match" in out
    assert "memory.db:consensus" in out and "text key replaced by a new integer key" in out
    rows = asyncio.run(
        _rows(Config(backend="postgres", dsn=Secret(pg)), "SELECT count(*) FROM dissent")
    )
    assert rows == [(20,)]
