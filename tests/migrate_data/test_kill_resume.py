"""migrate-data killed with SIGKILL at random points, resumed each time: every row lands
once, rejects are recorded once, and at most the batch in flight is redone per kill."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.migrate_data.conftest import make_sqlite

pytestmark = pytest.mark.postgres

KILLS = int(os.environ.get("ARAGORA_MIGRATE_KILLS", "20"))
ROWS = 200_000
BATCH = 200

TARGET = """
CREATE TABLE authors (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, active BOOLEAN NOT NULL);
CREATE TABLE posts (
    id BIGSERIAL PRIMARY KEY, author_id BIGINT REFERENCES authors (id), body TEXT,
    meta JSONB, created TIMESTAMPTZ
);
CREATE TABLE events (seq BIGINT, kind TEXT, at TIMESTAMPTZ);  -- no key: duplicates would show
"""
SOURCE = """
CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT, active INTEGER);
CREATE TABLE posts (id INTEGER PRIMARY KEY, author_id INTEGER, body TEXT, meta TEXT, created);
CREATE TABLE events (seq INTEGER, kind TEXT, at);
"""


def build(path: Path) -> tuple[dict[str, int], int]:
    """The source, its table sizes, and how many posts must be rejected (orphans, broken
    JSON, and posts of the author that is itself rejected)."""
    rng = random.Random(7)
    authors: list[tuple[object, ...]] = [(i, f"author {i}", i % 2) for i in range(1, 2001)]
    authors.append((2001, None, 1))  # NOT NULL: rejected
    posts = []
    refused = 0
    for i in range(1, ROWS + 1):
        author = rng.randint(1, 2001) if i % 997 else 999_999  # orphans
        meta = f'{{"n": {i}}}' if i % 1009 else "{broken"
        refused += author in (2001, 999_999) or not i % 1009
        created = 1_700_000_000_000 + i if i % 2 else f"2024-01-01 00:00:{i % 60:02d}"
        posts.append((i, author, f"post {i} ✓", meta, created))
    events = [(i, "tick", 1_700_000_000 + i) for i in range(ROWS // 2)]
    make_sqlite(path, SOURCE, {"authors": authors, "posts": posts, "events": events})
    return {"authors": len(authors), "posts": len(posts), "events": len(events)}, refused


def command(source: Path, dsn: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "aragora_repos",
        "migrate-data",
        "--sqlite-path",
        str(source),
        "--postgres-dsn",
        dsn,
        "--batch-size",
        str(BATCH),
        "--json",
        *extra,
    ]


async def _stats(dsn: str) -> dict[str, tuple[int, int]]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_stat_force_next_flush()")
        rows = await conn.fetch(
            "SELECT relname, n_tup_ins, n_live_tup FROM pg_stat_user_tables "
            "WHERE schemaname = 'public'"
        )
        return {r[0]: (r[1], r[2]) for r in rows}
    finally:
        await conn.close()


async def test_sigkill_at_random_points_then_resume(tmp_path: Path, target_dsn: str) -> None:
    conn = await asyncpg.connect(target_dsn)
    await conn.execute(TARGET)
    await conn.close()
    source = tmp_path / "big.db"
    sizes, post_rejects = build(source)
    rng = random.Random(2026)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    kills = 0
    watch = await asyncpg.connect(target_dsn)
    committed = 0
    try:
        while kills < KILLS:
            proc = subprocess.Popen(command(source, target_dsn), env=env, stdout=subprocess.PIPE)
            # Wait for this run's first committed batch, then kill a random moment later:
            # inside a batch or between two.
            while proc.poll() is None:
                now = await watch.fetchval(
                    "SELECT coalesce(sum(rows_read), 0) FROM aragora_migrate.progress"
                    if await watch.fetchval("SELECT to_regclass('aragora_migrate.progress')")
                    else "SELECT 0"
                )
                if now > committed:
                    committed = now
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(rng.uniform(0.0, 0.15))
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            committed = await watch.fetchval(
                "SELECT coalesce(sum(rows_read), 0) FROM aragora_migrate.progress"
            )
    finally:
        await watch.close()
    done = subprocess.run(command(source, target_dsn, "--verify"), env=env, capture_output=True)
    report = json.loads(done.stdout)
    assert done.returncode == 3, done.stderr.decode()  # rows were rejected, verification ok
    assert report["verified"] is True
    assert kills == KILLS, f"the copy finished after {kills} kills: make the source larger"

    conn = await asyncpg.connect(target_dsn)
    try:
        rejected: dict[str, int] = {
            r[0]: r[1]
            for r in await conn.fetch(
                "SELECT table_name, count(*) FROM aragora_migrate.rejects GROUP BY 1"
            )
        }
        for table, size in sizes.items():
            target_rows = await conn.fetchval(f"SELECT count(*) FROM {table}")
            assert size == target_rows + rejected.get(table, 0), table
        assert rejected == {"authors": 1, "posts": post_rejects}
        assert await conn.fetchval("SELECT count(*) - count(DISTINCT seq) FROM events") == 0
        # A rerun writes nothing; an insert after the copy gets the next key.
        again = subprocess.run(command(source, target_dsn), env=env, capture_output=True)
        assert json.loads(again.stdout)["total_migrated"] == 0
        assert (
            await conn.fetchval("INSERT INTO posts (body) VALUES ('new') RETURNING id") == ROWS + 1
        )
    finally:
        await conn.close()
    stats = await _stats(target_dsn)
    # Rows of batches a kill rolled back, on the table without rejects (elsewhere the
    # split of refused batches also inserts and rolls back): at most a batch per kill.
    inserted, live = stats["events"]
    redone = inserted - live
    assert 0 <= redone <= KILLS * BATCH
    print(
        f"FIGURE migrate-data SIGKILL x{kills}: {sum(sizes.values()):,} source rows, "
        f"counts and checksums equal, 0 duplicates, {redone:,} rows of killed batches "
        f"redone in events (bound {KILLS * BATCH:,}), rerun wrote 0 rows"
    )
