"""Every source row accounted for: nothing skipped or left behind without a word.

Found on an earlier main: ``consolidate --migrate`` on three legacy files holding the same
table with the same keys and different contents reported 102 of 153 rows as "already
there" and exited 0; ``migrate-data`` exited 0 with a source table that had no target
table, or with a target schema that did not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from pathlib import Path

import pytest

from aragora_db.__main__ import main as cli_main
from aragora_repos.errors import MigrationError
from aragora_repos.tools.layout import consolidate
from aragora_repos.tools.migrate_data import migrate_data
from tests.conftest import BACKENDS
from tests.pg_server import fresh_database

LEGACY = ("debates.db", "traces.db", "tournaments.db")  # all three go to core.db


def make_legacy(folder: Path) -> None:
    folder.mkdir()
    for n, name in enumerate(LEGACY):
        db = sqlite3.connect(folder / name)
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, owner TEXT, body TEXT)")
        # Rows 0..9 are the same in every file; 10..49 differ from file to file.
        db.executemany(
            "INSERT INTO items VALUES (?, ?, ?)",
            [(i, "o", "same" if i < 10 else f"{name}-{i}") for i in range(50)],
        )
        db.execute('CREATE TABLE "a(b" ("x y" INTEGER PRIMARY KEY, "on" TEXT)')
        db.execute('CREATE INDEX "i ON j(" ON "a(b" ("on")')
        db.execute('INSERT INTO "a(b" VALUES (?, ?)', (n, name))
        db.commit()
        db.close()


def test_consolidate_names_every_collision_and_fails(tmp_path: Path) -> None:
    source = tmp_path / "legacy"
    make_legacy(source)
    report = consolidate(source, action="migrate")
    items = [m for m in report.moves if m.table == "items"]
    assert [(m.written, m.skipped, m.collided) for m in items] == [
        (50, 0, 0),  # the first file in (debates.db)
        (0, 10, 40),
        (0, 10, 40),
    ]
    assert all(m.accounted for m in report.moves)
    assert not report.ok and "COLLIDED" in report.render()
    lines = [json.loads(x) for x in Path(str(report.reject_file)).read_text().splitlines()]
    assert len(lines) == 80
    first = next(x for x in lines if x["source_file"] == "traces.db" and x["row"]["id"] == 10)
    assert first["row"]["body"] == "traces.db-10" and first["existing"]["body"] == "debates.db-10"
    assert Path(str(report.reject_file)).stat().st_mode & 0o777 == 0o600
    # A hostile table and index name ('a(b', 'i ON j(') made it across with its rows.
    for made in source.glob("core.db*"):
        assert made.stat().st_mode & 0o777 == 0o600, made
    core = sqlite3.connect(source / "core.db")
    assert core.execute('SELECT count(*) FROM "a(b"').fetchone() == (3,)
    core.close()
    # A rerun does not turn the collisions into "already there".
    again = consolidate(source, action="migrate", take_backup=False)
    assert [m.collided for m in again.moves if m.table == "items"] == [0, 40, 40]
    assert not again.ok
    assert cli_main(["consolidate", "--migrate", "--source", str(source), "--no-backup"]) == 1


@pytest.mark.postgres
async def test_migrate_data_refuses_to_leave_tables_behind_unless_named(
    tmp_path: Path, target_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncpg

    source = tmp_path / "src.db"
    db = sqlite3.connect(source)
    db.execute("CREATE TABLE kept (id INTEGER PRIMARY KEY, v TEXT, extra TEXT)")
    db.execute("CREATE TABLE orphan_table (id INTEGER PRIMARY KEY)")
    db.executemany("INSERT INTO kept VALUES (?, ?, ?)", [(i, "v", "x") for i in range(7)])
    db.executemany("INSERT INTO orphan_table VALUES (?)", [(i,) for i in range(5)])
    db.commit()
    db.close()
    conn = await asyncpg.connect(target_dsn)
    await conn.execute("CREATE TABLE kept (id BIGINT PRIMARY KEY, v TEXT)")
    await conn.close()

    with pytest.raises(MigrationError) as info:
        await migrate_data(source, target_dsn)
    assert "table orphan_table (5 rows)" in str(info.value)
    assert "column kept.extra (7 non-NULL values)" in str(info.value)
    with pytest.raises(MigrationError, match="has no schema 'nowhere'"):
        await migrate_data(source, target_dsn, schema="nowhere")
    code = await asyncio.to_thread(
        cli_main, ["migrate-data", "--sqlite-path", str(source), "--postgres-dsn", target_dsn]
    )
    assert code == 1 and "orphan_table" in capsys.readouterr().err

    report = await migrate_data(
        source, target_dsn, exclude_tables=["orphan_table", "kept.extra"], verify=True
    )
    assert report.left_behind == {"orphan_table": 5, "kept.extra": 7}
    assert report.tables["kept"].migrated == 7 and report.verified
    assert "left behind (excluded): orphan_table: 5 rows" in report.render()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_two_stampers_at_once_record_the_versions_once(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """``migrate stamp`` from two processes at once: one records every version, the other
    is refused; never twice (the lock, then the check, in one transaction)."""
    from aragora_db.migrations import MIGRATIONS
    from aragora_repos import Config, Secret, open_async

    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            config = Config(data_dir=tmp_path)
        else:
            dsn = stack.enter_context(fresh_database(request.getfixturevalue("postgres_dsn")))
            config = Config(backend="postgres", dsn=Secret(dsn), pool_max=2)
        first, second = await open_async(config), await open_async(config)
        try:
            results = await asyncio.gather(
                first.stamp(MIGRATIONS), second.stamp(MIGRATIONS), return_exceptions=True
            )
            recorded = await first.applied()
        finally:
            await first.close()
            await second.close()
    done = [r for r in results if isinstance(r, list)]
    refused = [r for r in results if isinstance(r, MigrationError)]
    assert len(done) == 1 and len(refused) == 1, results
    assert "already records migrations" in str(refused[0])
    assert sorted(recorded) == [m.version for m in MIGRATIONS]
