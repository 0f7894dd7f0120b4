"""What the background sync costs and how fast it delivers.

``python -m bench.sync [--rounds 31] [--backlog 1000000] [--seconds 20]`` (the capture
cost is part of ``make bench``; ``make bench-sync`` runs all three):

* **capture cost**: a single-row insert through the generated code into a synced table
  (the capture trigger appends to the outbox in the same transaction) against the same
  insert into a database whose capture triggers were dropped; interleaved rounds, the
  median ratio with its interquartile range. Target: at most 1.3x (the whole range).
* **lag**: the service running as ``connect()`` starts it, 200 committed changes a second
  for ``--seconds``; each change's lag is the target's commit time (a target-only column
  defaulting to ``clock_timestamp()``) minus the local commit time carried in the row.
  Reported: p50 and p99.
* **catch-up**: a backlog of ``--backlog`` captured inserts delivered by the worker
  (batches of 1,000 and of the default 10), in changes per second, against migrate-data
  copying the same rows (binary COPY) into another target.

Results go to ``bench/results/sync.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sqlite3
import statistics
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import asyncpg

from aragora_db import MIGRATIONS, connect, connect_sync
from aragora_repos import Config, Secret
from aragora_repos.config import SyncSettings
from aragora_repos.tools.sync import SyncWorker
from bench.harness import save

TARGET = 1.3


def _cpu_rounds(off: Any, on: Any, rounds: int, inner: int) -> dict[str, Any]:
    """Interleaved rounds of process CPU time (the insert runs in this process, and the
    write's system calls count), the order alternating; ratio on / off per round."""
    ratios, off_us = [], []
    for r in range(rounds):
        pair = [(off, "off"), (on, "on")]
        if r % 2:
            pair.reverse()
        got = {}
        for call, label in pair:
            call()
            gc.collect()
            start = time.process_time()
            for _ in range(inner):
                call()
            got[label] = (time.process_time() - start) / inner
        ratios.append(got["on"] / got["off"])
        off_us.append(got["off"] * 1e6)
    q1, median, q3 = statistics.quantiles(ratios, n=4)
    return {
        "ratio": round(median, 3),
        "iqr_low": round(q1, 3),
        "iqr_high": round(q3, 3),
        "sync_off_us": round(statistics.median(off_us), 1),
        "rounds": rounds,
        "per_round_ratio": [round(x, 4) for x in ratios],
    }


async def capture_cost(rounds: int, inner: int = 5000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        on = connect_sync(Config(data_dir=Path(tmp) / "on"))
        off = connect_sync(Config(data_dir=Path(tmp) / "off"))
        try:
            on.migrate()
            off.migrate()
            for table in ("debates", "nomic_cycles", "stream_events", "agent_metrics"):
                for kind in ("insert", "update", "delete"):
                    off.connection.execute(f"DROP TRIGGER {table}_sync_{kind}", ())
            counter = iter(range(10**9))

            def insert(db: Any) -> Any:
                def go() -> None:
                    db.nomic.append_stream_event(
                        loop_id="bench",
                        cycle=next(counter),
                        event_type="message",
                        event_data={"agent": "claude", "round": 3, "text": "x" * 120},
                        agent="claude",
                    )

                return go

            result = _cpu_rounds(insert(off), insert(on), rounds, inner)
        finally:
            on.close()
            off.close()
    high = result["iqr_high"]
    return {
        "sync on / sync off, single-row insert": result,
        "target": TARGET,
        "met": float(high <= TARGET),
    }


async def _fresh_target(admin: str) -> tuple[str, str]:
    import uuid

    name = f"bench_sync_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    await conn.close()
    head = admin.rsplit("/", 1)[0]
    dsn = f"{head}/{name}"
    db = await connect(Config(backend="postgres", dsn=Secret(dsn), pool_max=2))
    await db.migrate()
    await db.close()
    return name, dsn


async def _drop(admin: str, name: str) -> None:
    conn = await asyncpg.connect(admin)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


async def lag(admin: str, seconds: float) -> dict[str, Any]:
    name, dsn = await _fresh_target(admin)
    try:
        conn = await asyncpg.connect(dsn)
        await conn.execute(
            "ALTER TABLE stream_events ADD COLUMN arrived timestamptz DEFAULT clock_timestamp()"
        )
        with tempfile.TemporaryDirectory() as tmp:
            db = await connect(
                Config(
                    data_dir=Path(tmp),
                    sync=SyncSettings(Secret(dsn), batch_size=100, interval=1.0),
                )
            )
            await db.migrate()
            loop = asyncio.get_running_loop()
            end = loop.time() + seconds
            written = 0
            next_at = loop.time()
            while loop.time() < end:
                await db.nomic.append_stream_event(
                    loop_id="lag",
                    cycle=written,
                    event_type="e",
                    event_data={"t": time.time()},
                    agent=None,
                )
                written += 1
                next_at += 1 / 200
                await asyncio.sleep(max(0.0, next_at - loop.time()))
            assert db.sync is not None
            await db.sync.flush(120)
            await db.close()
        rows = await conn.fetch(
            "SELECT extract(epoch FROM arrived)::float8 - (event_data->>'t')::float8 "
            "FROM stream_events"
        )
        await conn.close()
        lags = sorted(r[0] * 1000 for r in rows)
        return {
            "changes": written,
            "rate_per_s": round(written / seconds, 1),
            "p50_ms": round(lags[len(lags) // 2], 1),
            "p99_ms": round(lags[int(len(lags) * 0.99)], 1),
            "max_ms": round(lags[-1], 1),
        }
    finally:
        await _drop(admin, name)


def _backlog(file: Path, n: int) -> None:
    with closing(sqlite3.connect(file)) as lite:
        lite.execute("BEGIN")
        lite.executemany(
            "INSERT INTO stream_events (loop_id, cycle, event_type, event_data, agent) "
            "VALUES (?, ?, 'message', ?, 'claude')",
            (
                (f"loop{i % 13}", i, json.dumps({"round": i % 5, "text": "x" * 80}))
                for i in range(n)
            ),
        )
        lite.commit()


async def catch_up(admin: str, n: int) -> dict[str, Any]:
    from aragora_repos.tools.migrate_data import migrate_data

    out: dict[str, Any] = {"changes": n}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        db = connect_sync(Config(data_dir=data))
        db.migrate()
        db.close()
        file = data / "aragora.db"
        _backlog(file, n)
        snapshot = data / "backlog.db"
        with closing(sqlite3.connect(file)) as src, closing(sqlite3.connect(snapshot)) as dst:
            src.backup(dst)
        for batch in (1000, 10):
            # The default batch is timed on the first 100,000 changes only (it is slow).
            limit = n if batch == 1000 else min(n, 100_000)
            name, dsn = await _fresh_target(admin)
            try:
                with (
                    closing(sqlite3.connect(snapshot)) as src,
                    closing(sqlite3.connect(file)) as dst,
                ):
                    src.backup(dst)
                cfg = Config(data_dir=data, sync=SyncSettings(Secret(dsn), batch_size=batch))
                assert cfg.sync is not None
                worker = SyncWorker(cfg, cfg.sync, MIGRATIONS)
                start = time.perf_counter()
                done = 0
                while done < limit:
                    step = await worker.step()
                    if step == 0:
                        break
                    done += step
                seconds = time.perf_counter() - start
                await worker.close()
                out[f"sync, batches of {batch}"] = {
                    "changes": done,
                    "seconds": round(seconds, 2),
                    "changes_per_s": round(done / seconds),
                }
            finally:
                await _drop(admin, name)
        name, dsn = await _fresh_target(admin)
        try:
            start = time.perf_counter()
            report = await migrate_data(snapshot, dsn, tables=["stream_events"])
            seconds = time.perf_counter() - start
            out["migrate-data (COPY), same rows"] = {
                "rows": report.tables["stream_events"].migrated,
                "seconds": round(seconds, 2),
                "rows_per_s": round(report.tables["stream_events"].migrated / seconds),
            }
        finally:
            await _drop(admin, name)
    return out


async def run(rounds: int, backlog: int, seconds: float, only_capture: bool) -> dict[str, Any]:
    results: dict[str, Any] = {"capture cost": await capture_cost(rounds)}
    print(f"  capture: {results['capture cost']}", flush=True)
    if only_capture:
        return results
    from tests.pg_server import find_server

    with find_server() as server:
        if server is None:
            raise SystemExit("no PostgreSQL server for the benchmarks")
        results["lag at 200 changes/s"] = await lag(server.admin_dsn, seconds)
        print(f"  lag: {results['lag at 200 changes/s']}", flush=True)
        results["catch-up"] = await catch_up(server.admin_dsn, backlog)
        print(f"  catch-up: {results['catch-up']}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sync")
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--capture-only", action="store_true")
    args = parser.parse_args()
    name = "sync_capture" if args.capture_only else "sync"
    print(save(name, asyncio.run(run(args.rounds, args.backlog, args.seconds, args.capture_only))))


if __name__ == "__main__":
    main()
