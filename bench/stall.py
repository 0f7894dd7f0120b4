"""Event-loop stall with inline SQLite reads while another process writes.

A writer process commits batches of 200 rows as fast as it can to the same database.
Meanwhile, on the event loop, a ticker sleeps 1 ms at a time and records how late it
wakes, and a reader task runs single-row repository reads (inline on the loop), yielding
to the loop between reads as an application would. Reported: the longest single inline
read and the ticker's longest lateness.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from aragora_db import Database

WRITER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
conn.execute("PRAGMA journal_mode = WAL")
end = time.time() + float(sys.argv[2])
n = 0
while time.time() < end:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO audit_log (user_id, org_id, action, resource_type, details) "
        "VALUES (?, 'stall', 'write', 'bench', '{}')", [(str(i),) for i in range(200)])
    conn.execute("COMMIT")
    n += 200
print(n)
"""


async def _arm(db: Database | None, path: Path, seconds: float) -> dict[str, float]:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    await asyncio.sleep(0.3)  # let the writer get going
    lateness: list[float] = []
    longest_call = 0.0
    calls = 0

    async def ticker() -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            lateness.append(time.perf_counter() - start - 0.001)

    tick = asyncio.create_task(ticker())
    end = time.perf_counter() + seconds - 0.6
    while time.perf_counter() < end:
        start = time.perf_counter()
        if db is None:
            sum(range(200))  # control arm: about as much CPU as a read, no SQLite
        else:
            await db.users.get_user_auth_state(id=f"u{calls % 1000}")
        longest_call = max(longest_call, time.perf_counter() - start)
        calls += 1
        await asyncio.sleep(0)
    tick.cancel()
    out, _ = writer.communicate(timeout=30)
    lateness.sort()
    return {
        "calls": calls,
        "rows written meanwhile": int(out.strip() or 0),
        "longest call (ms)": longest_call * 1000,
        "longest event-loop lateness (ms)": lateness[-1] * 1000,
        "p99.9 event-loop lateness (ms)": lateness[int(len(lateness) * 0.999)] * 1000,
        "p99 event-loop lateness (ms)": lateness[int(len(lateness) * 0.99)] * 1000,
    }


async def measure_stall(db: Database, path: Path, seconds: float = 6.0) -> dict[str, float]:
    """Inline reads against a control arm that does no SQLite work, same writer load."""
    reads = await _arm(db, path, seconds)
    control = await _arm(None, path, seconds)
    out = {f"inline reads: {k}": v for k, v in reads.items()}
    out.update({f"control, no reads: {k}": v for k, v in control.items()})
    return out
