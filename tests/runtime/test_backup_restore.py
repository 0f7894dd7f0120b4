"""``aragora-repos backup`` and ``restore`` on both backends: a set restores to exactly the
state it was taken of, a tampered set is refused, and pruning keeps what it must."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from aragora_db import UserRole, connect
from aragora_db.__main__ import main as cli_main
from aragora_repos import BackupError, Config, Secret
from aragora_repos.tools.backup_sets import MANIFEST, prune, restore, verify_set
from tests.pg_server import fresh_database


async def add_users(config: Config, names: list[str]) -> None:
    db = await connect(config)
    await db.migrate()
    for name in names:
        await db.users.create_user(
            id=name,
            email=f"{name}@x",
            password_hash="h",
            password_salt="s",
            name=name,
            org_id=None,
            role=UserRole.MEMBER,
        )
    await db.close()


def sqlite_state(folder: Path) -> dict[str, str]:
    """Every table of every database file in ``folder``, hashed row by row."""
    out = {}
    for path in sorted(folder.glob("*.db")):
        if path.read_bytes()[:16] != b"SQLite format 3\x00":
            continue
        db = sqlite3.connect(path)
        for (table,) in db.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ):
            rows = sorted(repr(r) for r in db.execute(f'SELECT * FROM "{table}"'))
            out[f"{path.name}:{table}"] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
        db.close()
    return out


async def pg_state(dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        tables = [
            r[0]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        return {
            t: str(
                await conn.fetchval(
                    f"SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) "
                    f'FROM "{t}" x'
                )
            )
            for t in tables
        }
    finally:
        await conn.close()


async def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = await asyncio.to_thread(cli_main, argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The SQLite data directory the CLI uses (ARAGORA_DATA_DIR), no DSN set."""
    monkeypatch.setenv("ARAGORA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return tmp_path / "data"


async def test_sqlite_backup_restores_exactly(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = Config(data_dir=data)
    await add_users(config, ["ada", "bob"])
    legacy = sqlite3.connect(data / "core.db")  # a second file of the data directory
    legacy.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    legacy.executemany("INSERT INTO notes VALUES (?, ?)", [(1, "one"), (2, "two")])
    legacy.commit()
    legacy.close()
    (data / "not-a-db.db").write_text("text")  # left out: not a SQLite file
    original = sqlite_state(data)

    code, out = await run(["backup", "--verify"], capsys)
    assert code == 0 and "verified" in out, out
    (folder,) = list((data / "backup").iterdir())
    assert sorted(p.name for p in folder.iterdir()) == ["aragora.db", "core.db", MANIFEST]
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["files"]["core.db"]["tables"] == {"notes": 2}

    await add_users(config, ["eve"])
    changed = sqlite3.connect(data / "core.db")
    changed.execute("DELETE FROM notes WHERE id = 1")
    changed.commit()
    changed.close()
    assert sqlite_state(data) != original

    code, out = await run(["restore", str(folder)], capsys)
    assert code == 0, out
    assert sqlite_state(data) == original
    # What the restore replaced was backed up first, with eve in it.
    safety = [p for p in (data / "backup").iterdir() if p != folder]
    assert len(safety) == 1 and "backup of what was replaced" in out
    kept = sqlite3.connect(safety[0] / "aragora.db")
    assert kept.execute("SELECT count(*) FROM users").fetchone() == (3,)
    kept.close()


async def test_a_tampered_set_is_refused_and_nothing_changes(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = Config(data_dir=data)
    await add_users(config, ["ada"])
    assert (await run(["backup"], capsys))[0] == 0
    (folder,) = list((data / "backup").iterdir())
    await add_users(config, ["bob"])
    before = sqlite_state(data)
    copy = folder / "aragora.db"
    raw = bytearray(copy.read_bytes())
    raw[-100] ^= 0xFF
    copy.write_bytes(bytes(raw))
    code, out = await run(["restore", str(folder)], capsys)
    assert code == 1 and "changed since the backup (checksum differs)" in out
    assert sqlite_state(data) == before
    assert len(list((data / "backup").iterdir())) == 1  # refused before any safety backup
    with pytest.raises(BackupError, match="no finished copy"):
        empty = data / "backup" / "20240101_000000"
        empty.mkdir()
        verify_set(empty)


@pytest.mark.postgres
async def test_postgres_backup_restores_exactly(
    postgres_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with fresh_database(postgres_dsn) as dsn:
        monkeypatch.setenv("ARAGORA_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("DATABASE_URL", dsn)
        config = Config(backend="postgres", dsn=Secret(dsn), data_dir=tmp_path / "data")
        await add_users(config, ["ada", "bob"])
        original = await pg_state(dsn)
        code, out = await run(["backup", "--verify"], capsys)
        assert code == 0, out
        (folder,) = list((tmp_path / "data" / "backup").iterdir())
        assert any(p.suffix == ".dump" for p in folder.iterdir())
        await add_users(config, ["eve"])
        conn = await asyncpg.connect(dsn)
        await conn.execute("DELETE FROM users WHERE id = 'ada'")
        await conn.close()
        assert await pg_state(dsn) != original
        done = await restore(config, folder)
        assert await pg_state(dsn) == original
        assert done.safety_backup is not None and done.safety_backup != folder


def test_prune_keeps_the_newest_and_touches_only_sets(tmp_path: Path) -> None:
    root = tmp_path / "backup"
    root.mkdir()
    for name in ("20260101_000000", "20260101_000000_2", "20261120_000000", "20261129_120000"):
        (root / name).mkdir()
        (root / name / "aragora.db").write_text("x")
    (root / "notes").mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    (root / "20200101_000000").symlink_to(victim)
    now = datetime(2026, 11, 30, tzinfo=UTC)
    removed = prune(root, keep_days=7, now=now)
    assert sorted(p.name for p in removed) == [
        "20260101_000000",
        "20260101_000000_2",
        "20261120_000000",
    ]
    assert sorted(p.name for p in root.iterdir()) == ["20200101_000000", "20261129_120000", "notes"]
    assert victim.is_dir()
    # However old, the newest set stays.
    assert prune(root, keep_days=0, now=datetime(2030, 1, 1, tzinfo=UTC)) == []
    assert os.path.isdir(root / "20261129_120000")
