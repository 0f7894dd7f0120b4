"""The job queue under SIGKILL, on both backends: worker processes draining one queue are
killed at random points and replaced; every job ends done, its effect written exactly
once (a row of job_effects keyed by the job, written in the completion's transaction),
none lost, none dead, none left running. ``ARAGORA_FAULT_SECONDS=30`` (``make faults``):
20,000 jobs, 8 workers, a kill at every 5% of progress; ``make test``: 1,000 jobs, 4
workers. Each run prints a FIGURE line."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aragora_db import Database, connect
from aragora_repos import Config, Secret
from tests.pg_server import fresh_database, run_async

FULL = float(os.environ.get("ARAGORA_FAULT_SECONDS", "5")) >= 30
JOBS, WORKERS, KILLS = (20_000, 8, 20) if FULL else (1_000, 4, 6)
ROOT = Path(__file__).resolve().parent.parent.parent


async def _prepare(config: Config) -> None:
    db = await connect(config)
    try:
        await db.migrate()
        await db.backend.execute(
            "CREATE TABLE job_effects (job_id BIGINT PRIMARY KEY, worker TEXT NOT NULL)", ()
        )
        async with db.transaction():
            for i in range(JOBS):
                await db.jobs.enqueue_job(
                    queue="fault",
                    kind="effect",
                    payload={"i": i},
                    priority=i % 3,
                    run_after=None,
                    idempotency_key=f"job-{i}",
                    max_attempts=1000,
                )
    finally:
        await db.close()


async def _done(db: Database) -> int:
    counts = {c.status: c.jobs for c in await db.jobs.count_jobs_by_status(queue="fault")}
    return counts.get("done", 0)


def _spawn(backend: str, target: str, name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "job_worker.py"), backend, target, name],
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'generated'}"},
    )


async def _drain(config: Config, backend: str, target: str) -> tuple[int, float]:
    rng = random.Random(7)
    workers = {f"w{n}": _spawn(backend, target, f"w{n}") for n in range(WORKERS)}
    db = await connect(config)
    kills, started, spawned = 0, time.monotonic(), WORKERS
    try:
        while True:
            done = await _done(db)
            if kills < KILLS and done >= (kills + 1) * JOBS // (KILLS + 1):
                name = rng.choice(sorted(workers))
                workers[name].send_signal(signal.SIGKILL)  # wherever it is
                workers[name].wait()
                spawned += 1
                workers[f"w{spawned}"] = _spawn(backend, target, f"w{spawned}")
                del workers[name]
                kills += 1
            if all(p.poll() is not None for p in workers.values()):
                break
            await asyncio.sleep(0.05)  # polling the progress, not waiting for an outcome
        seconds = time.monotonic() - started
        assert all(p.returncode == 0 for p in workers.values())
    finally:
        for p in workers.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        await db.close()
    return kills, seconds


async def _check(config: Config) -> None:
    db = await connect(config)
    try:
        counts = {c.status: c.jobs for c in await db.jobs.count_jobs_by_status(queue="fault")}
        assert counts == {"done": JOBS}, counts
        effects = await db.backend.fetch(
            "SELECT count(*), count(DISTINCT job_id) FROM job_effects", ()
        )
        assert tuple(effects[0]) == (JOBS, JOBS)
        missing = await db.backend.fetch(
            "SELECT count(*) FROM jobs j WHERE NOT EXISTS "
            "(SELECT 1 FROM job_effects e WHERE e.job_id = j.id)",
            (),
        )
        assert missing[0][0] == 0
    finally:
        await db.close()


def _run(config: Config, backend: str, target: str) -> None:
    run_async(_prepare(config))
    kills, seconds = run_async(_drain(config, backend, target))
    run_async(_check(config))
    print(
        f"\nFIGURE job queue {backend}: {JOBS:,} jobs, {WORKERS} workers, {kills} SIGKILLs: "
        f"all done, every effect once, {JOBS / seconds:,.0f} jobs/s ({seconds:.1f} s)"
    )


def test_sigkilled_sqlite_workers_lose_and_repeat_nothing(tmp_path: Path) -> None:
    _run(Config(data_dir=tmp_path), "sqlite", str(tmp_path))


@pytest.mark.postgres
def test_sigkilled_postgres_workers_lose_and_repeat_nothing(postgres_dsn: str) -> None:
    with fresh_database(postgres_dsn) as dsn:
        _run(Config(backend="postgres", dsn=Secret(dsn), pool_max=2), "postgres", dsn)
