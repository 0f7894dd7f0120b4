"""Many application instances through one transaction pooler: 8 processes, each with its
own pool of 10, through one PgBouncer pool of 10 server connections, mixed reads, writes
and run_in_transaction; the same load direct to the server for comparison. No errors, no
lost acknowledged write. ``ARAGORA_FAULT_SECONDS`` sets the duration (60 s in ``make
faults``, 5 s in ``make test``); each run prints a FIGURE line."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from tests.pg_server import fresh_database, run_async
from tests.pgbouncer import pgbouncer

pytestmark = pytest.mark.postgres

#: ``make faults`` (ARAGORA_FAULT_SECONDS=30) runs this load for 60 s; ``make test`` 5 s.
FAULT_SECONDS = float(os.environ.get("ARAGORA_FAULT_SECONDS", "5"))
SECONDS = 60.0 if FAULT_SECONDS >= 30 else FAULT_SECONDS
PROCESSES = 8
ROOT = Path(__file__).parent.parent.parent


@dataclass
class Run:
    acked: list[str]
    unknown: list[str]
    errors: dict[str, int]
    latencies: list[float]


def _load(dsn: str, direct: str, pooler: str) -> Run:
    clients = [
        subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).parent / "pooler_client.py"),
                dsn,
                direct,
                pooler,
                str(worker),
                str(SECONDS),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for worker in range(PROCESSES)
    ]
    results = []
    for client in clients:
        out, err = client.communicate(timeout=SECONDS + 120)
        assert client.returncode == 0, err[-3000:]
        results.append(json.loads(out))
    acked = [k for r in results for k in r["acked"]]
    unknown = [k for r in results for k in r["unknown"]]
    errors: dict[str, int] = {}
    for r in results:
        for name, count in r["errors"].items():
            errors[name] = errors.get(name, 0) + count
    latencies = sorted(x for r in results for x in r["latencies"])
    return Run(acked, unknown, errors, latencies)


async def _stored(direct: str) -> dict[str, int]:
    conn = await asyncpg.connect(direct)
    try:
        rows = await conn.fetch("SELECT key, count(*) FROM pooled_rows GROUP BY key")
    finally:
        await conn.close()
    return {r[0]: r[1] for r in rows}


async def _table(direct: str) -> None:
    conn = await asyncpg.connect(direct)
    try:
        await conn.execute(
            "DROP TABLE IF EXISTS pooled_rows; "
            "CREATE TABLE pooled_rows (id bigserial PRIMARY KEY, key text NOT NULL)"
        )
    finally:
        await conn.close()


def _summary(name: str, run: Run, stored: dict[str, int]) -> str:
    latencies = run.latencies
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    return (
        f"{name}: {len(latencies)} operations in {SECONDS:g} s "
        f"({len(latencies) / SECONDS:.0f}/s), p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"errors {run.errors or 0}, rows {len(stored)}"
    )


def test_eight_instances_through_one_transaction_pooler(postgres_dsn: str) -> None:
    with fresh_database(postgres_dsn) as direct:
        run_async(_table(direct))
        with pgbouncer(direct, "transaction", pool_size=10) as pooled:
            through = _load(pooled, direct, "transaction")
        stored = run_async(_stored(direct))
        lost = [k for k in through.acked if k not in stored]
        duplicates = sum(c - 1 for c in stored.values() if c > 1)
        line = _summary("through PgBouncer (transaction, 10 server connections)", through, stored)
        run_async(_table(direct))
        alone = _load(direct, direct, "none")
        line += "; " + _summary("direct", alone, run_async(_stored(direct)))
        print(f"\nFIGURE pooler load, {PROCESSES} processes x pool 10: {line}")
    assert through.errors == {} and alone.errors == {}
    assert lost == [] and duplicates == 0
    assert through.unknown == []
