"""Event-loop lateness of every inline SQLite read, with and without the inline budget.

``python -m bench.inline_reads [--rows 200000] [--calls 15]`` (part of ``make bench``):
``users`` and ``audit_log`` hold ``--rows`` rows each, and a writer process commits
batches of audit entries the whole time. For every generated query that SQLite's async
repositories answer inline on the event loop (a read-only ``:one``), the script calls it
``--calls`` times with arguments drawn from its types (the differential suite's
strategies, a key from the loaded rows where one fits) while a ticker sleeps 1 ms at a
time and records how late it wakes. Reported per query: the worst lateness, with the
budget off (``ARAGORA_SQLITE_INLINE_BUDGET_MS=off``) and at its default (1 ms), and the
worst lateness of the same pauses with no query at all (the machine's own floor under
that writer); target below 5 ms for every query. Results go to ``bench/results/inline_reads.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aragora_db import connect
from aragora_repos import Config, DatabaseError
from bench.harness import save
from bench.stall import WRITER
from tests.differential.harness import Call, arguments, discover

KEYS = {"id", "user_id", "email", "org_id"}


def _inline(call: Call) -> bool:
    import importlib

    module = importlib.import_module(f"aragora_db.{call.store}")
    repo = next(
        v
        for k, v in vars(module).items()
        if k.startswith("Sqlite")
        and k.endswith("Repository")
        and inspect.isclass(v)
        and v.__module__ == module.__name__
    )
    source = inspect.getsource(getattr(repo, call.method))
    return "self._db.read(" in source


def _load(path: Path, rows: int) -> None:
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO users (id, email, password_hash, password_salt, name, role, is_active) "
        "VALUES (?, ?, 'h', 's', ?, 'member', ?)",
        ((f"u{i}", f"u{i}@example.com", f"User {i}", i % 3 != 0) for i in range(rows)),
    )
    conn.executemany(
        "INSERT INTO audit_log (timestamp, user_id, org_id, action, resource_type, details) "
        "VALUES ('2026-01-01 00:00:00.000000+00:00', ?, 'o', 'login', 'user', '{}')",
        ((f"u{i}",) for i in range(rows)),
    )
    conn.execute("COMMIT")
    conn.close()


async def _arm(
    path: Path, budget: float | None, calls: list[Call], repeat: int, rows: int
) -> dict[str, float]:
    db = await connect(Config(data_dir=path.parent, sqlite_inline_budget_ms=budget))
    worst: dict[str, float] = {}
    lateness: list[float] = []

    async def ticker() -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            lateness.append(time.perf_counter() - start - 0.001)

    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), "3600"], stdout=subprocess.DEVNULL
    )
    rng = random.Random(3)
    drawn: dict[str, list[dict[str, Any]]] = {}
    for call in calls:  # drawn before the clock starts: drawing takes milliseconds
        drawn[call.query] = []
        for _ in range(repeat):
            args = arguments(call).example()
            for name in set(args) & KEYS:
                if isinstance(args[name], str):
                    args[name] = f"u{rng.randrange(rows)}" + (
                        "@example.com" if name == "email" else ""
                    )
            drawn[call.query].append(args)
    tick = asyncio.create_task(ticker())
    try:
        # The floor: the same pauses with no query at all, the writer running.
        lateness.clear()
        for _ in range(repeat * len(calls)):
            await asyncio.sleep(0.002)
        worst["(control: no query)"] = round(max(lateness or [0.0]) * 1000, 2)
        for call in calls:
            method = getattr(getattr(db, call.store), call.method)
            lateness.clear()
            for args in drawn[call.query]:
                with contextlib.suppress(DatabaseError):  # a refused argument: no time
                    await method(**args)
                await asyncio.sleep(0.002)  # let the ticker see the loop between calls
            worst[f"{call.store}.{call.query}"] = round(max(lateness or [0.0]) * 1000, 2)
    finally:
        tick.cancel()
        writer.kill()
        writer.wait()
        await db.close()
    return worst


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.inline_reads")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--calls", type=int, default=15)
    args = parser.parse_args()
    calls = [c for c in discover() if _inline(c)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "aragora.db"
        db = await connect(Config(data_dir=Path(tmp)))
        await db.migrate()
        await db.close()
        _load(path, args.rows)
        off = await _arm(path, None, calls, args.calls, args.rows)
        on = await _arm(path, 1.0, calls, args.calls, args.rows)
    floor = (off.pop("(control: no query)"), on.pop("(control: no query)"))
    table = {
        name: {"budget off (ms)": off[name], "budget 1 ms (ms)": on[name]} for name in sorted(off)
    }
    summary = {
        "queries": len(calls),
        "control, no query: worst lateness (ms)": max(floor),
        "worst, budget off (ms)": max(off.values()),
        "worst, budget 1 ms (ms)": max(on.values()),
        "over 5 ms, budget off": sum(v >= 5 for v in off.values()),
        "over 5 ms, budget 1 ms": sum(v >= 5 for v in on.values()),
    }
    save("inline_reads", {"summary": summary, "queries": table})
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
