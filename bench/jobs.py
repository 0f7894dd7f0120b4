"""Job queue throughput (part of ``make bench``): draining a queue with the generated
queries (``aragora_repos.tools.jobs.work_once``: reclaim expired leases, claim a batch under a
lease, complete each job in its own transaction) against a hand-written loop on the raw
driver doing the same work (reclaim; ``SELECT ... FOR UPDATE SKIP LOCKED`` and ``UPDATE
... RETURNING`` the claimed rows on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite; complete),
one process each. The raw loop's rows stay tuples; the generated one builds typed jobs
and runs through the async API (SQLite's writer thread).

``python -m bench.jobs [--rounds 9] [--jobs 2000]``: every round enqueues the jobs afresh
(not timed) and times each contender draining them, in alternating order; reported are
jobs/s for each and the median ratio generated / raw with its interquartile range.
Results go to ``bench/results/jobs.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from aragora_db import Database, connect
from aragora_repos import Config, Secret
from aragora_repos.tools.jobs import work_once
from bench.harness import save

BATCH = 50
PG_CLAIM = """
WITH picked AS (
    SELECT id FROM jobs WHERE queue = 'bench' AND status = 'queued' AND run_after <= now()
    ORDER BY priority DESC, run_after, id LIMIT $1 FOR UPDATE SKIP LOCKED
)
UPDATE jobs SET status = 'running', locked_by = 'raw', attempts = attempts + 1,
    locked_until = now() + interval '30 seconds'
FROM picked WHERE jobs.id = picked.id RETURNING jobs.*
"""
PG_RECLAIM = (
    "UPDATE jobs SET status = 'queued', locked_by = NULL, locked_until = NULL "
    "WHERE status = 'running' AND locked_until < now()"
)
PG_DONE = (
    "UPDATE jobs SET status = 'done', finished_at = now(), locked_by = NULL, "
    "locked_until = NULL WHERE id = $1 AND locked_by = 'raw'"
)
LITE_CLAIM = (
    "UPDATE jobs SET status = 'running', locked_by = 'raw', attempts = attempts + 1, "
    "locked_until = ? WHERE id IN (SELECT id FROM jobs WHERE queue = 'bench' AND "
    "status = 'queued' AND run_after <= ? ORDER BY priority DESC, run_after, id LIMIT ?) "
    "RETURNING *"
)
LITE_RECLAIM = (
    "UPDATE jobs SET status = 'queued', locked_by = NULL, locked_until = NULL "
    "WHERE status = 'running' AND locked_until < ?"
)
LITE_DONE = (
    "UPDATE jobs SET status = 'done', finished_at = ?, locked_by = NULL, locked_until = NULL "
    "WHERE id = ? AND locked_by = 'raw'"
)


async def _enqueue(db: Database, n: int) -> None:
    async with db.transaction():
        for i in range(n):
            await db.jobs.enqueue_job(
                queue="bench",
                kind="k",
                payload={"i": i},
                priority=i % 3,
                run_after=None,
                idempotency_key=None,
                max_attempts=3,
            )


async def _generated(db: Database) -> None:
    async def handler(job: Any) -> Any:
        return None

    while (await work_once(db, handler, queue="bench", worker="gen", batch=BATCH)).claimed:
        pass


def _now() -> str:
    return datetime.now(UTC).isoformat(" ", "microseconds")


def _raw_sqlite(path: Path) -> Callable[[], Awaitable[None]]:
    async def drain() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            while True:
                conn.execute(LITE_RECLAIM, (_now(),))
                conn.execute("BEGIN IMMEDIATE")
                ids = [r[0] for r in conn.execute(LITE_CLAIM, ("9999", _now(), BATCH))]
                conn.execute("COMMIT")
                if not ids:
                    return
                for job_id in ids:
                    conn.execute("BEGIN IMMEDIATE")
                    conn.execute(LITE_DONE, (_now(), job_id))
                    conn.execute("COMMIT")
        finally:
            conn.close()

    return drain


def _raw_postgres(dsn: str) -> Callable[[], Awaitable[None]]:
    async def drain() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            while True:
                await conn.execute(PG_RECLAIM)
                ids = [r[0] for r in await conn.fetch(PG_CLAIM, BATCH)]
                if not ids:
                    return
                for job_id in ids:
                    async with conn.transaction():
                        await conn.execute(PG_DONE, job_id)
        finally:
            await conn.close()

    return drain


async def _rounds(
    db: Database, raw: Callable[[], Awaitable[None]], rounds: int, jobs: int
) -> dict[str, float]:
    times: dict[str, list[float]] = {"generated": [], "raw": []}
    for r in range(rounds):
        order: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("generated", lambda: _generated(db)),
            ("raw", raw),
        ]
        for name, drain in order if r % 2 == 0 else order[::-1]:
            await _enqueue(db, jobs)
            started = time.perf_counter()
            await drain()
            times[name].append(time.perf_counter() - started)
    ratios = [g / r for g, r in zip(times["generated"], times["raw"], strict=True)]
    q1, median, q3 = statistics.quantiles(ratios, n=4)
    return {
        "generated_jobs_per_s": round(jobs / statistics.median(times["generated"])),
        "raw_jobs_per_s": round(jobs / statistics.median(times["raw"])),
        "ratio": round(median, 3),
        "iqr_low": round(q1, 3),
        "iqr_high": round(q3, 3),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.jobs")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--jobs", type=int, default=2000)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        config = Config(data_dir=Path(tmp))
        db = await connect(config)
        await db.migrate()
        results["sqlite"] = await _rounds(
            db, _raw_sqlite(config.sqlite_file), args.rounds, args.jobs
        )
        await db.close()
    admin_dsn = os.environ.get(
        "ARAGORA_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    admin = await asyncpg.connect(admin_dsn)
    name = f"aragora_bench_jobs_{os.getpid()}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = admin_dsn.rsplit("/", 1)[0] + f"/{name}"
        db = await connect(Config(backend="postgres", dsn=Secret(dsn), pool_max=2))
        await db.migrate()
        results["postgres"] = await _rounds(db, _raw_postgres(dsn), args.rounds, args.jobs)
        await db.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    print(save("jobs", results))


if __name__ == "__main__":
    asyncio.run(main())
