"""Time as PostgreSQL keeps it, on both backends: a ``timestamp`` (without zone) column
filled by ``now()`` gives a naive datetime with microseconds, and looking the row up by
the value just returned finds it; ``now()`` is one value per transaction; interval
arithmetic and ``date_trunc`` keep each column's form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.golden_exec.projects import run_ok, write_project
from tests.pg_server import fresh_database

SCHEMA = """-- migrate:up
CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    local_at TIMESTAMP NOT NULL DEFAULT now(),
    zoned_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    wall_at TIMESTAMP NOT NULL DEFAULT LOCALTIMESTAMP
);
-- migrate:down
DROP TABLE events;
"""
QUERIES = """-- name: AddEvent :one
INSERT INTO events (name) VALUES ($1) RETURNING id, local_at, zoned_at, wall_at;

-- name: AddEventNow :one
INSERT INTO events (name, local_at, zoned_at) VALUES ($1, now(), now())
RETURNING local_at, zoned_at;

-- name: EventsAtLocal :many
SELECT id FROM events WHERE local_at = $1 ORDER BY id;

-- name: EventsAtZoned :many
SELECT id FROM events WHERE zoned_at = $1 ORDER BY id;

-- name: Later :one
SELECT (local_at + interval '90 minutes')::timestamp AS local_later,
       (zoned_at + interval '1.5 seconds')::timestamptz AS zoned_later,
       date_trunc('hour', local_at)::timestamp AS local_hour,
       local_at::timestamptz AS as_zoned,
       zoned_at::timestamp AS as_local
FROM events WHERE id = $1;
"""
SCRIPT = """
import asyncio, json, sys
from datetime import timedelta
from pathlib import Path
import clock_db
from aragora_repos import Config, Secret

async def main(target):
    config = Config(data_dir=Path(target)) if not target.startswith("postgresql") else Config(
        backend="postgres", dsn=Secret(target))
    db = await clock_db.connect(config)
    await db.migrate()
    out = {}
    row = await db.events.add_event(name="a")
    out["local_naive"] = row.local_at.tzinfo is None
    out["zoned_aware"] = row.zoned_at.tzinfo is not None
    out["wall_naive"] = row.wall_at.tzinfo is None
    out["same_instant"] = row.local_at == row.zoned_at.replace(tzinfo=None)
    out["found_local"] = [r for r in await db.events.events_at_local(local_at=row.local_at)]
    out["found_zoned"] = [r for r in await db.events.events_at_zoned(zoned_at=row.zoned_at)]
    async with db.transaction():
        first = await db.events.add_event_now(name="b")
        second = await db.events.add_event_now(name="c")
    out["one_now_per_transaction"] = first == second
    later = await db.events.later(id=row.id)
    out["local_later"] = later.local_later - row.local_at == timedelta(minutes=90)
    out["local_later_naive"] = later.local_later.tzinfo is None
    out["zoned_later"] = later.zoned_later - row.zoned_at == timedelta(seconds=1.5)
    out["hour_naive"] = later.local_hour.tzinfo is None and later.local_hour.minute == 0
    out["as_zoned"] = later.as_zoned == row.local_at.replace(tzinfo=later.as_zoned.tzinfo)
    out["as_local"] = later.as_local == row.zoned_at.replace(tzinfo=None)
    await db.close()
    print(json.dumps(out))

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.postgres
def test_time_values_agree_on_both_backends(tmp_path: Path, postgres_dsn: str) -> None:
    root = write_project(tmp_path / "clock", "clock_db", SCHEMA, QUERIES, "events")
    (root / "run.py").write_text(SCRIPT)
    run_ok(root, "-m", "codegen", "generate", "--root", str(root))
    sqlite = json.loads(run_ok(root, "run.py", str(tmp_path / "data")))
    with fresh_database(postgres_dsn) as dsn:
        postgres = json.loads(run_ok(root, "run.py", dsn))
    assert sqlite == postgres
    assert all(v is True or v == [1] for v in sqlite.values()), sqlite
